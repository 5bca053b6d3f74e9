"""Time units of inference times (seconds): one definition for the device models and the whole toolkit."""

SECOND = 1.0
MINUTE = 60.0
HOUR = 3600.0
DAY = 86400.0
WEEK = 7 * DAY
#: [choice] a month is 30 days and a year 365 days
MONTH = 30 * DAY
YEAR = 365 * DAY
