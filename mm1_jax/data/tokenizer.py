"""Tokenizers: a HF `tokenizer.json` or a SentencePiece model, plus the special tokens MM1 needs.

Special tokens: <pad> <bos> <eos> <image> (one image slot; K of them per image entry), <overview> and
<crop_1>..<crop_16> (MM1.5 index markers), <box> </box> (grounding: coordinates are written as text between them).
A tokenizer that lacks one gets it appended at the end of its vocabulary.
"""

import os
import re
from typing import Sequence

from etils import epath

MAX_CROPS = 16
SPECIAL_TOKENS = (
    ["<pad>", "<bos>", "<eos>", "<unk>", "<image>", "<overview>"]
    + [f"<crop_{i}>" for i in range(1, MAX_CROPS + 1)]
    + ["<box>", "</box>"]
)
# Names other tokenizers use for the same roles; the first one present wins.
_ALIASES = {
    "<pad>": ["<pad>", "<|pad|>", "[PAD]", "<|endoftext|>"],
    "<bos>": ["<bos>", "<s>", "<|begin_of_text|>", "[CLS]"],
    "<eos>": ["<eos>", "</s>", "<|end_of_text|>", "<|endoftext|>", "<|im_end|>", "[SEP]"],
    "<unk>": ["<unk>", "[UNK]"],
    "<image>": ["<image>", "<|image|>"],  # mPLUG-Owl3's Qwen2 tokenizer: its image placeholder
}


class Tokenizer:
    """Text <-> ids with the MM1 special tokens resolved to ids (`image_id`, `bos_id`, `crop_id(i)`...)."""

    def __init__(self, path: str):
        self.path = str(path)
        data = epath.Path(path).read_bytes()
        if self.path.endswith(".json"):
            self._init_hf(data)
        else:
            self._init_sentencepiece(data)
        self.pad_id = self.special["<pad>"]
        self.bos_id = self.special["<bos>"]
        self.eos_id = self.special["<eos>"]
        self.image_id = self.special["<image>"]
        self.overview_id = self.special["<overview>"]
        self.box_ids = (self.special["<box>"], self.special["</box>"])

    def _init_hf(self, data: bytes):
        import tokenizers  # pylint: disable=g-import-not-at-top

        self._hf = tokenizers.Tokenizer.from_str(data.decode("utf-8"))
        vocab = self._hf.get_vocab(with_added_tokens=True)
        missing = [t for t in SPECIAL_TOKENS if not any(a in vocab for a in _ALIASES.get(t, [t]))]
        if missing:
            self._hf.add_special_tokens([tokenizers.AddedToken(t, special=True, normalized=False) for t in missing])
            vocab = self._hf.get_vocab(with_added_tokens=True)
        self.special = {t: next(vocab[a] for a in _ALIASES.get(t, [t]) if a in vocab) for t in SPECIAL_TOKENS}
        self.vocab_size = self._hf.get_vocab_size(with_added_tokens=True)
        self._sp = None

    def _init_sentencepiece(self, data: bytes):
        import sentencepiece  # pylint: disable=g-import-not-at-top

        self._sp = sentencepiece.SentencePieceProcessor(model_proto=data)
        n = self._sp.get_piece_size()
        known = {
            "<pad>": self._sp.pad_id(),
            "<bos>": self._sp.bos_id(),
            "<eos>": self._sp.eos_id(),
            "<unk>": self._sp.unk_id(),
        }
        self.special, extra = {}, 0
        for t in SPECIAL_TOKENS:
            piece_id = self._sp.piece_to_id(t)
            if known.get(t, -1) >= 0:
                self.special[t] = known[t]
            elif piece_id != self._sp.unk_id():
                self.special[t] = piece_id
            else:
                self.special[t] = n + extra
                extra += 1
        self.vocab_size = n + extra
        self._hf = None
        self._split = re.compile("(" + "|".join(re.escape(t) for t in SPECIAL_TOKENS) + ")")

    def encode(self, text: str) -> list[int]:
        """Ids of `text` (no <bos>/<eos> added); special-token strings in the text map to their ids."""
        if self._hf is not None:
            return self._hf.encode(text, add_special_tokens=False).ids
        ids = []
        for part in self._split.split(text):
            if part in self.special:
                ids.append(self.special[part])
            elif part:
                ids.extend(self._sp.encode(part))
        return ids

    def decode(self, ids: Sequence[int], mark_images: bool = True) -> str:
        """Text of `ids`, special tokens shown; a run of image slots is shown as one `<image>` (for inspection)."""
        parts, run = [], []
        for i in list(ids) + [None]:
            if i is None or (mark_images and int(i) == self.image_id):
                if run:
                    parts.append(self._decode_run(run))
                    run = []
                if i is not None and (not parts or parts[-1] != "<image>"):
                    parts.append("<image>")
            else:
                run.append(int(i))
        return " ".join(parts)

    def _decode_run(self, ids: list[int]) -> str:
        if self._hf is not None:
            return self._hf.decode(ids, skip_special_tokens=False)
        # Text pieces are decoded together (SentencePiece joins sub-words and turns "▁" into spaces); special
        # tokens, which SentencePiece decodes to nothing or does not know, are shown by name.
        names = {v: k for k, v in self.special.items()}
        words, pieces = [], []
        for i in ids + [None]:
            if i is None or i in names:
                if pieces:
                    words.append(self._sp.decode(pieces))
                    pieces = []
                if i is not None:
                    words.append(names[i])
            else:
                pieces.append(i)
        return " ".join(words)

    def crop_id(self, i: int) -> int:
        """Id of the marker before crop i (1-based)."""
        return self.special[f"<crop_{i}>"]


_CACHE: dict[str, Tokenizer] = {}


def load_tokenizer(path: str) -> Tokenizer:
    """A cached `Tokenizer` for `path` (one per process: grain workers load their own)."""
    path = os.fspath(path)
    if not path:
        raise ValueError("Data config: `tokenizer` is empty; set it to a tokenizer.json or SentencePiece .model path.")
    if path not in _CACHE:
        if not epath.Path(path).exists():
            raise FileNotFoundError(f"Data config: tokenizer file {path!r} does not exist.")
        _CACHE[path] = Tokenizer(path)
    return _CACHE[path]
