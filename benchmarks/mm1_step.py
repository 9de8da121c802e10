"""The whole MM1 train step (ViT -> C-Abstractor -> decoder over packed image-text rows, forward + backward + AdamW),
ours (JAX, the trainer's own step function) against the same model assembled in PyTorch, in one run.

    python benchmarks/mm1_step.py [--rounds=5] [--batch=4 --seq=512 --images=3 ...] [--skip_torch] [--profile]

Ours: `registry.build_model` on the flags' config, `trainer.make_train_step` (the function `Trainer` jits: gradient
of the summed token loss, global-norm clipping, AdamW from `optim.make_optimizer`, the non-finite guard), jitted
with the state donated, float32.
PyTorch: transformers' CLIPVisionModel (features: last_hidden_state without the class token, as MM1 reads them) ->
the C-Abstractor reference of tests/test_connectors.py (HoneyBee's RegNet stages, adaptive pooling, MLP readout) ->
the image embeddings fill the slot tokens' embeddings of LlamaForCausalLM, which attends within each packed document
(a boolean [B, 1, T, T] block-causal mask, positions restarting per document) -> the same weighted token loss,
clip_grad_norm_(1.0), torch.optim.AdamW (same betas, eps, weight decay on matrices only), float32.
Both: the same dims and the same batch: B rows of T tokens, each packed with `docs` documents and `images` images
per row (K slot tokens each, loss weight 0 on the slots), every row full (no padding).
tokens/s counts every token of the batch; images/s the images encoded. MFU = analytic model FLOPs
(`mm1_jax.models.flops`: 6 x matmul parameters per token or patch + attention 12 x layers x width x length, the PaLM
convention) / time / the same framework's measured float32 matmul peak. Medians of interleaved rounds; quote the ratio.
"""
from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402

from data_pipeline import cpu_name  # noqa: E402
from train_step import interleaved_medians, jax_matmul, torch_matmul  # noqa: E402

from mm1_jax.models.flops import step_flops  # noqa: E402

PARTS = ("encoder", "connector", "decoder")


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    a = ap.add_argument
    a("--rounds", type=int, default=5)
    a("--skip_torch", action="store_true")
    a("--profile", action="store_true", help="also print the per-op-category breakdown of both steps")
    a("--profile_steps", type=int, default=1)
    # the batch
    a("--batch", type=int, default=4, help="rows")
    a("--seq", type=int, default=512, help="tokens per row")
    a("--images", type=int, default=3, help="images per row")
    a("--docs", type=int, default=2, help="packed documents per row")
    # the ViT (CLIP style)
    a("--image_size", type=int, default=112)
    a("--patch_size", type=int, default=14)
    a("--vit_width", type=int, default=256)
    a("--vit_depth", type=int, default=4)
    a("--vit_heads", type=int, default=4)
    a("--vit_mlp", type=int, default=1024)
    # the C-Abstractor
    a("--image_tokens", type=int, default=16, help="K, a square")
    a("--abstractor_width", type=int, default=256)
    a("--abstractor_depth", type=int, default=1, help="RegNet blocks per stage")
    a("--readout_depth", type=int, default=2)
    # the decoder (Llama)
    a("--width", type=int, default=512)
    a("--depth", type=int, default=4)
    a("--heads", type=int, default=8)
    a("--kv_heads", type=int, default=8)
    a("--ffn", type=int, default=1408)
    a("--vocab", type=int, default=8192)
    a("--lr", type=float, default=1e-4)
    a("--weight_decay", type=float, default=0.01)
    return ap.parse_args(argv)


def model_config(args) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(
        encoder=dict(style="clip", image_size=args.image_size, patch_size=args.patch_size, width=args.vit_width,
                     depth=args.vit_depth, num_heads=args.vit_heads, mlp_dim=args.vit_mlp, norm_eps=1e-5,
                     feature_layer=-1, feature_norm=False, drop_class_token=True),
        connector=dict(name="c_abstractor", num_tokens=args.image_tokens, hidden_dim=args.abstractor_width,
                       depth=args.abstractor_depth, mlp_depth=args.readout_depth),
        decoder=dict(vocab_size=args.vocab, width=args.width, depth=args.depth, num_heads=args.heads,
                     num_kv_heads=args.kv_heads, mlp_dim=args.ffn, rope_theta=10000.0, tie_embeddings=False,
                     norm_eps=1e-5, scan_layers=False, remat_policy="none"),
        max_images=args.images, dtype="float32"))


def optimizer_config(args) -> ml_collections.ConfigDict:
    """The trainer's AdamW at a constant LR (no warmup: the schedule is a constant after step 0 anyway)."""
    return ml_collections.ConfigDict(dict(name="adamw", lr_rule="fixed", lr=args.lr, weight_decay=args.weight_decay,
                                          warmup_steps=0, final_lr_fraction=1.0, b1=0.9, b2=0.95, eps=1e-8,
                                          clip_norm=1.0))


def make_batch(args, seed: int = 0) -> dict[str, np.ndarray]:
    """Packed rows in `mm1_jax.data`'s layout: `docs` documents per row, the row's images spread over them (image m in
    document m % docs), each image's K slot tokens after a few text tokens; every position is real (no padding)."""
    b, t, m, k, docs = args.batch, args.seq, args.images, args.image_tokens, args.docs
    rng = np.random.default_rng(seed)
    doc_len = t // docs
    per_doc = -(-m // docs)
    if doc_len < per_doc * (k + 8) + 1:
        raise ValueError(f"--seq={t} split into --docs={docs} documents leaves {doc_len} tokens each, too few for "
                         f"{per_doc} images of {k} slot tokens (each after 8 text tokens).")
    batch = {"tokens": rng.integers(3, args.vocab, (b, t)).astype(np.int32),
             "targets": rng.integers(3, args.vocab, (b, t)).astype(np.int32),
             "loss_weights": np.ones((b, t), np.float32), "segment_ids": np.zeros((b, t), np.int32),
             "positions": np.zeros((b, t), np.int32), "image_token_index": np.full((b, t), -1, np.int32),
             "images": rng.standard_normal((b, m, args.image_size, args.image_size, 3)).astype(np.float32),
             "image_valid": np.ones((b, m), bool)}
    starts = [d * doc_len for d in range(docs)] + [t]
    for d in range(docs):
        batch["segment_ids"][:, starts[d]:starts[d + 1]] = d + 1
        batch["positions"][:, starts[d]:starts[d + 1]] = np.arange(starts[d + 1] - starts[d])
    for i in range(m):
        d, j = i % docs, i // docs
        slot = starts[d] + 8 + j * (k + 8)
        batch["image_token_index"][:, slot:slot + k] = i * k + np.arange(k)
        batch["loss_weights"][:, slot:slot + k] = 0.0
    return batch


def count(tree) -> int:
    return int(sum(np.size(x) for x in jax.tree.leaves(tree)))


def ours_step(args, batch):
    """(run, hlo text, params): a warmed-up call of the trainer's jitted train step on `batch`."""
    import flax.linen as nn  # pylint: disable=import-outside-toplevel

    from mm1_jax.models import registry  # pylint: disable=import-outside-toplevel
    from mm1_jax.train import optim, trainer  # pylint: disable=import-outside-toplevel

    model = registry.build_model(model_config(args))
    batch = {k: jnp.asarray(v) for k, v in batch.items()}
    params = jax.jit(lambda r: nn.unbox(model.init(r, **batch)["params"]))(jax.random.PRNGKey(0))
    tx, schedule = optim.make_optimizer(optimizer_config(args), 1000, count(params["decoder"]))
    state = {"step": jnp.zeros((), jnp.int32), "params": params, "opt_state": jax.jit(tx.init)(params)}
    step_fn = trainer.make_train_step(model, tx, schedule, PARTS, 1, None)
    compiled = jax.jit(step_fn, donate_argnums=(0,)).lower(state, batch).compile()
    holder = {"s": state}

    def run():
        holder["s"], metrics = compiled(holder["s"], batch)
        jax.block_until_ready(metrics)

    run()
    return run, compiled.as_text(), holder["s"]["params"]


def torch_step(args, batch):
    """(run, model): a warmed-up step of the same model in PyTorch on the same batch."""
    import torch  # pylint: disable=import-outside-toplevel
    # pylint: disable=import-outside-toplevel
    from transformers import CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM

    from tests.test_connectors import TorchCAbstractor  # pylint: disable=import-outside-toplevel

    torch.manual_seed(0)
    grid = args.image_size // args.patch_size

    class TorchMM1(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.vision = CLIPVisionModel(CLIPVisionConfig(
                hidden_size=args.vit_width, intermediate_size=args.vit_mlp, num_hidden_layers=args.vit_depth,
                num_attention_heads=args.vit_heads, image_size=args.image_size, patch_size=args.patch_size,
                hidden_act="quick_gelu", layer_norm_eps=1e-5))
            self.abstractor = TorchCAbstractor(grid * grid, args.image_tokens, args.vit_width, args.abstractor_width,
                                               args.width, args.abstractor_depth, args.readout_depth)
            self.llm = LlamaForCausalLM(LlamaConfig(
                vocab_size=args.vocab, hidden_size=args.width, intermediate_size=args.ffn,
                num_hidden_layers=args.depth, num_attention_heads=args.heads, num_key_value_heads=args.kv_heads,
                max_position_embeddings=args.seq, tie_word_embeddings=False, rms_norm_eps=1e-5, rope_theta=10000.0))

        def forward(self, pixels, tokens, image_token_index, mask, positions):
            features = self.vision(pixel_values=pixels).last_hidden_state[:, 1:]
            b, t = tokens.shape
            embeds = self.abstractor(features).reshape(b, -1, args.width)  # [B, M*K, D] in slot order
            x = self.llm.model.embed_tokens(tokens)
            gathered = torch.gather(embeds, 1, image_token_index.clamp(min=0)[..., None].expand(-1, -1, args.width))
            x = torch.where((image_token_index >= 0)[..., None], gathered, x)
            return self.llm(inputs_embeds=x, attention_mask=mask, position_ids=positions).logits

    model = TorchMM1().float().train()
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.95), eps=1e-8)
    b, m, s = args.batch, args.images, args.image_size
    pixels = torch.from_numpy(batch["images"].reshape(b * m, s, s, 3).transpose(0, 3, 1, 2).copy())
    seg = torch.from_numpy(batch["segment_ids"])
    causal = torch.ones(args.seq, args.seq, dtype=torch.bool).tril()
    mask = ((seg[:, :, None] == seg[:, None, :]) & (seg[:, None, :] > 0) & causal)[:, None]
    inputs = (pixels, torch.from_numpy(batch["tokens"]).long(), torch.from_numpy(batch["image_token_index"]).long(),
              mask, torch.from_numpy(batch["positions"]).long())
    targets = torch.from_numpy(batch["targets"]).long().reshape(-1)
    weights = torch.from_numpy(batch["loss_weights"]).reshape(-1)

    def run():
        opt.zero_grad(set_to_none=True)
        logits = model(*inputs)
        nll = torch.nn.functional.cross_entropy(logits.reshape(-1, args.vocab), targets, reduction="none")
        loss = (nll * weights).sum() / weights.sum().clamp(min=1e-8)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    run()
    return run, model


def main(argv=None):
    args = parse_args(argv)
    import torch  # pylint: disable=import-outside-toplevel

    torch.set_num_threads(os.cpu_count())
    batch = make_batch(args)
    grid = args.image_size // args.patch_size
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores; jax {jax.__version__}, torch {torch.__version__}")
    print(f"batch {args.batch} rows x {args.seq} tokens, {args.docs} documents and {args.images} images per row "
          f"({args.image_size} px, {grid}x{grid} patches -> {args.image_tokens} tokens each); ViT (CLIP) width "
          f"{args.vit_width}, {args.vit_depth} layers, {args.vit_heads} heads, MLP {args.vit_mlp}; C-Abstractor "
          f"width {args.abstractor_width}, {args.abstractor_depth} block(s) per stage, {args.readout_depth} readout "
          f"layers; decoder (Llama) width {args.width}, {args.depth} layers, {args.heads} heads / {args.kv_heads} KV, "
          f"FFN {args.ffn}, vocab {args.vocab}; AdamW, clip 1.0, float32")
    runs = {}
    runs["peak_jax"], peak_flops = jax_matmul()
    runs["peak_torch"], _ = torch_matmul()
    runs["ours"], hlo, params = ours_step(args, batch)
    if not args.skip_torch:
        runs["torch"], torch_model = torch_step(args, batch)
        n_ours, n_torch = count(params), sum(p.numel() for p in torch_model.parameters())
        print(f"parameters: ours {n_ours:,}, torch {n_torch:,}" + ("" if n_ours == n_torch else " (they differ: "
              "check that both sides were built from the same flags)"))
    sec = interleaved_medians(runs, args.rounds)
    flops = step_flops(model_config(args), params, rows=args.batch, seq_len=args.seq)["total"]
    tokens, images = args.batch * args.seq, args.batch * args.images
    peak = {"jax": peak_flops / sec["peak_jax"], "torch": peak_flops / sec["peak_torch"]}
    print(f"\n{'':40s} {'tokens/s':>10s} {'images/s':>9s} {'step':>9s} {'MFU':>7s}")
    print(f"{'matmul peak, jax (2048^3 float32)':40s} {peak['jax'] / 1e9:>10.1f} GF/s")
    print(f"{'matmul peak, torch':40s} {peak['torch'] / 1e9:>10.1f} GF/s")
    labels = {"ours": ("MM1 step, ours (JAX, trainer step)", "jax"),
              "torch": ("MM1 step, PyTorch (transformers)", "torch")}
    for name, (label, fw) in labels.items():
        if name in sec:
            print(f"{label:40s} {tokens / sec[name]:>10,.0f} {images / sec[name]:>9.1f} {sec[name]:>7.2f} s "
                  f"{flops / sec[name] / peak[fw]:>7.1%}")
    if "torch" in sec:
        print(f"{'ratio ours / PyTorch (tokens/s)':40s} {sec['torch'] / sec['ours']:>9.2f}x")
    print(f"model FLOPs per step {flops / 1e9:.1f} G; medians of {args.rounds} interleaved rounds.")
    if args.profile:
        import profile_step  # pylint: disable=import-outside-toplevel

        ours = profile_step.jax_profile(runs["ours"], hlo, args.profile_steps)
        ref = None if args.skip_torch else profile_step.torch_profile(runs["torch"], args.profile_steps)
        profile_step.print_breakdown(ours, ref, "MM1 train step")


if __name__ == "__main__":
    main()
