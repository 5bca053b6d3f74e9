"""analog_peft: noise-aware PEFT of transformers for analog in-memory-computing chips."""
