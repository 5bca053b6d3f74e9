"""``import analog_peft as ap``: the lifecycle's verbs, their configs and the version, from one place."""

from __future__ import annotations

import importlib
import subprocess
import sys
from importlib import metadata

import analog_peft as ap


def test_every_export_resolves_to_the_object_it_names():
    for name, target in ap._EXPORTS.items():
        module, attr = target.split(":")
        assert getattr(ap, name) is getattr(importlib.import_module(module), attr), name
    assert set(ap._EXPORTS) <= set(dir(ap))


def test_verbs_survive_the_import_of_their_same_named_submodules():
    import analog_peft.convert  # noqa: F401  (the import system would bind the module to ap.convert)
    import analog_peft.deploy  # noqa: F401
    from analog_peft.convert import convert

    assert ap.convert is convert and callable(ap.deploy)
    assert ap.deploy.__module__ == "analog_peft.deploy"


def test_version_is_the_installed_distribution_and_the_cli_prints_it():
    assert ap.__version__ == metadata.version("analog_peft")
    out = subprocess.run([sys.executable, "-m", "analog_peft.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == f"analog-peft {ap.__version__}"


def test_quiet_and_verbose_route_the_toolkit_logs(tmp_path, capsys):
    from analog_peft.cli import main

    assert main(["convert", "minilm-l6", "--rpu", "ideal"]) == 0
    out = capsys.readouterr().out
    assert "analog layers" in out and "head: pooling mean" in out
    assert main(["--quiet", "convert", "minilm-l6", "--rpu", "ideal"]) == 0
    assert capsys.readouterr().out == ""  # results are log records: --quiet leaves warnings and errors only
    assert main(["--quiet", "--verbose", "convert", "minilm-l6"]) == 2  # mutually exclusive: a usage error
