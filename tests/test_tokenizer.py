"""The SentencePiece path of `mm1_jax.data.tokenizer` against sentencepiece itself: ids, MM1's special tokens and
decoding (the HF tokenizer.json path is exercised by every data test through the embedded world's tokenizer)."""
import numpy as np
import pytest
import sentencepiece as spm

from mm1_jax.data.tokenizer import SPECIAL_TOKENS, Tokenizer

WORDS = ["red", "green", "blue", "circle", "square", "triangle", "picture", "shows", "corners", "there", "another"]


@pytest.fixture(scope="module")
def sp_path(tmp_path_factory):
    """A small BPE model with <image> as a user-defined piece (as some released vocabularies have their own)."""
    root = tmp_path_factory.mktemp("sp")
    rng = np.random.default_rng(0)
    lines = [" ".join(rng.choice(WORDS, 8)) for _ in range(400)]
    (root / "corpus.txt").write_text("\n".join(lines))
    spm.SentencePieceTrainer.train(input=str(root / "corpus.txt"), model_prefix=str(root / "m"), vocab_size=60,
                                   model_type="bpe", character_coverage=1.0, unk_id=0, bos_id=1, eos_id=2, pad_id=3,
                                   user_defined_symbols=["<image>"], minloglevel=2)
    return str(root / "m.model")


def test_ids_and_special_tokens_follow_the_model(sp_path):
    sp, tok = spm.SentencePieceProcessor(model_file=sp_path), Tokenizer(sp_path)
    for text in ["a red circle shows", "another blue triangle and green corners", "unseen words: zebra 42"]:
        assert tok.encode(text) == sp.encode(text)
    n = sp.get_piece_size()
    assert (tok.special["<unk>"], tok.bos_id, tok.eos_id, tok.pad_id) == (sp.unk_id(), sp.bos_id(), sp.eos_id(),
                                                                           sp.pad_id())
    assert tok.image_id == sp.piece_to_id("<image>") < n  # the model's own piece is used
    appended = [t for t in SPECIAL_TOKENS if t not in ("<pad>", "<bos>", "<eos>", "<unk>", "<image>")]
    assert [tok.special[t] for t in appended] == list(range(n, n + len(appended)))  # the rest follow the vocabulary
    assert tok.vocab_size == n + len(appended) and tok.crop_id(16) == tok.special["<crop_16>"]


def test_special_tokens_in_text_and_decoding(sp_path):
    sp, tok = spm.SentencePieceProcessor(model_file=sp_path), Tokenizer(sp_path)
    ids = tok.encode("<overview>red triangles<box>")
    assert ids[0] == tok.overview_id and ids[-1] == tok.box_ids[0] and ids[1:-1] == sp.encode("red triangles")
    assert len(sp.encode("red triangles")) > 2  # "triangles" is split into pieces: decoding must join them
    text = "another green triangles shows corners"
    assert tok.decode(tok.encode(text)) == sp.decode(sp.encode(text)) == text
    row = [tok.bos_id] + tok.encode("red squares") + [tok.image_id] * 3 + tok.encode("blue") + [tok.eos_id]
    assert tok.decode(row) == "<bos> red squares <image> blue <eos>"
    assert tok.decode(row, mark_images=False) == "<bos> red squares <image> <image> <image> blue <eos>"
