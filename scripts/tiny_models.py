"""A tiny GPT-2 with a BPE tokenizer trained on E2E texts: a CPU-sized causal LM for tests and quick runs."""

from __future__ import annotations

from pathlib import Path


def build_tiny_gpt2(path: str | Path, *, n_layer: int = 2, n_embd: int = 32, n_head: int = 2, vocab_size: int = 400,
                    max_mrs: int = 200, seed: int = 0, data_dir: str | None = None) -> Path:
    """Save a randomly initialised GPT-2 and a byte-level BPE tokenizer (trained on E2E dev texts) to ``path``.

    Loadable by name (``TrainConfig(model=str(path))``); ``<eos>`` doubles as the pad token.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    from analog_peft.tasks import load_e2e

    path = Path(path)
    texts = [t for ex in load_e2e("dev", data_dir=data_dir, max_examples=max_mrs) for t in (ex.mr, *ex.refs)]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<eos>", "<unk>"]))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", unk_token="<unk>", pad_token="<eos>")
    fast.save_pretrained(path)
    config = GPT2Config(n_layer=n_layer, n_embd=n_embd, n_head=n_head, vocab_size=len(fast), n_positions=256,
                        eos_token_id=fast.eos_token_id, bos_token_id=fast.eos_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        GPT2LMHeadModel(config).save_pretrained(path)
    return path
