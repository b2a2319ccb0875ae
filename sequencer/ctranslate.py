"""The CTranslate2 export: a Transformer run converted to a CTranslate2 model, and translating with it.

CTranslate2 (OpenNMT's inference engine) decodes a Transformer on the CPU several times faster
than the Keras model, in a process that needs neither TensorFlow nor Keras: `predict.py --export`
starts in a fraction of the time. `convert` writes a run's final model (model.keras, which holds
the average where the run chose it) with CTranslate2's own Python API: `TransformerConverter`, a
`ctranslate2.converters.Converter`, fills a `TransformerSpec` from the Keras weights:

- pre-norm layers with a final layer norm on each stack, ReLU, one layer-norm epsilon (1e-5);
- token embeddings scaled by sqrt(model_dim), the target table tied to the output projection
  (and shared with the source for a joint subword vocabulary);
- the position tables written out, `max_positions` rows: KerasHub's sinusoids start at position
  0 and interleave sin and cos, where CTranslate2's built-in ones start at 1 and concatenate them
  (left in place, they change the log-probabilities by up to 5.6 nats). The rows bound what the
  model reads and writes, as learned positions do: longer sources are cut, translations stop there;
- the vocabularies as token strings in id order, the reserved ids first (`<pad> <s> </s> <unk>`),
  so that CTranslate2's ids are the run's; sources carry no start or end marker.

`CTranslate2Translator` translates with such a folder, with the run's own tokenisation (the
SentencePiece model, or `vocabulary`'s characters and words) and the configuration's Prediction
keys. CTranslate2 treats `<pad>` and `<s>` as ordinary tokens, so they are suppressed. Its
length penalty is not GNMT's ((5 + length) / 6) ** alpha, so it decodes with none, returning the
beam's hypotheses with their log-probabilities, adds its greedy translation (as the project's beam
search does) and ranks them all by GNMT's penalty. One difference remains: CTranslate2 renormalises
each step's probabilities over the tokens it may emit there (not `<pad>`, `<s>`, nor `</s>` before
`min_output_len`), where the TensorFlow search does not, so its scores are a little higher (about
0.01 on a trained model) and, rarely, a near-tie ranks differently.

Only this module reads private attributes of keras-hub 0.32's Transformer layers and of Keras
3.15's MultiHeadAttention (`layer_parts`, `attention_parts`); tests/test_ctranslate.py pins them.
Keras is imported only to convert: translating needs CTranslate2, NumPy and SentencePiece alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ctranslate2
import numpy as np
from ctranslate2.specs import common_spec, transformer_spec

from sequencer.config import Config
from sequencer.errors import DataError
from sequencer.exports import check_convertible, check_export_folder, describe, write_description
from sequencer.files import atomic_path
from sequencer.runs import Run, load_vocabularies
from sequencer.scoring import length_penalty
from sequencer.text import first_line
from sequencer.translation import BatchTranslator, Decoding, Hypothesis, unknown_tokens
from sequencer.vocabulary import SPECIALS, Vocabulary

if TYPE_CHECKING:
    import keras

SUPPRESSED = [["<pad>"], ["<s>"]]  # never emitted, as search.allowed_next bans them


def ctranslate2_tokens(vocab: Vocabulary) -> list[str]:
    """The token strings of a vocabulary in id order, the reserved ids' names first: CTranslate2's
    ids are then the run's (for subwords, SentencePiece's pieces). No token can be named like a
    reserved one: a character or word token is one character or word, and SentencePiece's pieces
    0-3 are those names."""
    return [*SPECIALS, *vocab.tokens]


# ---- keras-hub 0.32 and Keras 3.15: the one place that reads private attributes ----------------


@dataclass(frozen=True)
class LayerParts:
    """The sublayers of a KerasHub `TransformerEncoder` or `TransformerDecoder` that hold weights."""

    self_attention: keras.layers.MultiHeadAttention
    self_attention_norm: keras.layers.LayerNormalization
    feedforward_norm: keras.layers.LayerNormalization
    feedforward_in: keras.layers.Dense
    feedforward_out: keras.layers.Dense
    cross_attention: keras.layers.MultiHeadAttention | None  # decoders only
    cross_attention_norm: keras.layers.LayerNormalization | None


def layer_parts(layer: keras.layers.Layer) -> LayerParts:
    """keras-hub 0.32 keeps a Transformer layer's sublayers in private attributes, named here only."""
    return LayerParts(
        layer._self_attention_layer,
        layer._self_attention_layer_norm,
        layer._feedforward_layer_norm,
        layer._feedforward_intermediate_dense,
        layer._feedforward_output_dense,
        getattr(layer, "_cross_attention_layer", None),
        getattr(layer, "_cross_attention_layer_norm", None),
    )


def attention_parts(attention: keras.layers.MultiHeadAttention) -> tuple[keras.layers.EinsumDense, ...]:
    """Keras 3.15's MultiHeadAttention keeps its query, key, value and output projections private."""
    return attention._query_dense, attention._key_dense, attention._value_dense, attention._output_dense


# ---- conversion --------------------------------------------------------------------------------


class TransformerConverter(ctranslate2.converters.Converter):
    """A built `TransformerSeq2Seq` as a CTranslate2 `TransformerSpec`, its position tables of `positions` rows.

    `convert(folder, quantization=...)` (CTranslate2's) writes it. Keras kernels are (in, out),
    CTranslate2's weights (out, in); attention kernels (D, heads, head_dim) keep each head as a
    contiguous block of rows, as CTranslate2 splits them, and self-attention's query, key and value
    are fused into one weight, [Q; K; V].
    """

    def __init__(self, model: keras.Model, source_vocab: Vocabulary, target_vocab: Vocabulary, positions: int):
        self._model = model
        self._tokens = ctranslate2_tokens(source_vocab), ctranslate2_tokens(target_vocab)
        self._positions = positions

    def _load(self) -> transformer_spec.TransformerSpec:
        model = self._model
        _check(model)
        spec = transformer_spec.TransformerSpec.from_config(
            (len(model.encoder_layers), len(model.decoder_layers)),
            model.settings.num_heads,
            pre_norm=True,
            activation=common_spec.Activation.RELU,
        )
        spec.config.layer_norm_epsilon = float(model.encoder_norm.epsilon)
        spec.config.unk_token, spec.config.bos_token, spec.config.eos_token = SPECIALS[3], SPECIALS[1], SPECIALS[2]
        spec.config.decoder_start_token = SPECIALS[1]  # the decoder reads <s> first, at position 0
        spec.config.add_source_bos = spec.config.add_source_eos = False
        target_table = _numpy(model.target_embedding.embeddings)  # (V, D), also the output projection
        source_table = target_table if model.shares_embeddings else _numpy(model.source_embedding.embeddings)
        spec.encoder.embeddings[0].weight = source_table  # scale_embeddings stays: sqrt(D), as _embed does
        spec.encoder.position_encodings.encodings = self._position_table(model.source_positions)
        for layer_spec, layer in zip(spec.encoder.layer, model.encoder_layers):
            _set_layer(layer_spec, layer_parts(layer))
        _set_layer_norm(spec.encoder.layer_norm, model.encoder_norm)
        spec.decoder.embeddings.weight = spec.decoder.projection.weight = target_table  # stored once
        spec.decoder.position_encodings.encodings = self._position_table(model.target_positions)
        for layer_spec, layer in zip(spec.decoder.layer, model.decoder_layers):
            _set_layer(layer_spec, layer_parts(layer))
        _set_layer_norm(spec.decoder.layer_norm, model.decoder_norm)
        spec.register_source_vocabulary(self._tokens[0])
        spec.register_target_vocabulary(self._tokens[1])
        return spec

    def _position_table(self, layer: keras.layers.Layer) -> np.ndarray:
        """The positions the model adds, row i at position i: a learned table as it is, sinusoids as
        the model's layer computes them, in float32 whatever precision the run trained in."""
        if hasattr(layer, "position_embeddings"):  # keras_hub.layers.PositionEmbedding
            return _numpy(layer.position_embeddings)
        sinusoids = type(layer).from_config({**layer.get_config(), "dtype": "float32"})
        zeros = np.zeros((1, self._positions, self._model.settings.model_dim), np.float32)
        return _numpy(sinusoids(zeros)[0])


def _check(model: keras.Model) -> None:
    """ValueError if the builder has changed in a way this converter does not express."""
    layers = [*model.encoder_layers, *model.decoder_layers]
    epsilons = {model.encoder_norm.epsilon, model.decoder_norm.epsilon, *(layer.layer_norm_epsilon for layer in layers)}
    activations = {getattr(layer.activation, "__name__", str(layer.activation)) for layer in layers}
    if not all(layer.normalize_first for layer in layers) or len(epsilons) != 1 or activations != {"relu"}:
        raise ValueError("the converter expects pre-norm ReLU layers with one layer-norm epsilon")
    if not model.target_embedding.tie_weights:
        raise ValueError("the converter expects the output projection to be the target embedding")


def _numpy(value: Any) -> np.ndarray:
    import keras

    return np.ascontiguousarray(keras.ops.convert_to_numpy(value), dtype=np.float32)


def _projection(dense: keras.layers.EinsumDense) -> tuple[np.ndarray, np.ndarray]:
    """A query, key or value kernel (D, H, Dh) and bias (H, Dh) as a (H * Dh, D) weight and a bias."""
    kernel = _numpy(dense.kernel)
    return np.ascontiguousarray(kernel.reshape(kernel.shape[0], -1).T), _numpy(dense.bias).reshape(-1)


def _set_attention(spec: Any, attention: keras.layers.MultiHeadAttention, fused: int) -> None:
    """An attention's projections: the first `fused` of query, key and value in linear[0], the
    others fused in linear[1] (cross-attention's key and value), the output projection last."""
    query, key, value, output = attention_parts(attention)
    projections = [_projection(dense) for dense in (query, key, value)]
    groups = [projections[:fused], projections[fused:]] if fused < 3 else [projections]
    for linear, group in zip(spec.linear, groups):
        linear.weight = np.concatenate([weight for weight, _ in group])
        linear.bias = np.concatenate([bias for _, bias in group])
    kernel = _numpy(output.kernel)  # (H, Dh, D)
    spec.linear[-1].weight = np.ascontiguousarray(kernel.reshape(-1, kernel.shape[-1]).T)
    spec.linear[-1].bias = _numpy(output.bias)


def _set_layer(spec: Any, parts: LayerParts) -> None:
    _set_attention(spec.self_attention, parts.self_attention, fused=3)
    _set_layer_norm(spec.self_attention.layer_norm, parts.self_attention_norm)
    if parts.cross_attention is not None:  # KerasHub normalises only the query side, as CTranslate2 does
        _set_attention(spec.attention, parts.cross_attention, fused=1)
        _set_layer_norm(spec.attention.layer_norm, parts.cross_attention_norm)
    _set_layer_norm(spec.ffn.layer_norm, parts.feedforward_norm)
    for linear, dense in ((spec.ffn.linear_0, parts.feedforward_in), (spec.ffn.linear_1, parts.feedforward_out)):
        linear.weight = np.ascontiguousarray(_numpy(dense.kernel).T)  # CTranslate2 applies the ReLU
        linear.bias = _numpy(dense.bias)


def _set_layer_norm(spec: Any, norm: keras.layers.LayerNormalization) -> None:
    spec.gamma, spec.beta = _numpy(norm.gamma), _numpy(norm.beta)


def convert(run: Run, out_dir: Path, quantization: str = "float32", force: bool = False) -> Path:
    """Write the run's Transformer as a CTranslate2 model to `out_dir`, atomically, with its
    vocabularies and export.json; an existing export only with `force`."""
    from sequencer.builders.transformer import MAX_POSITIONS

    check_convertible("ctranslate2", run.config.model, run.path)
    check_export_folder(out_dir, force)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    converter = TransformerConverter(run.model, run.source_vocab, run.target_vocab, MAX_POSITIONS)
    with atomic_path(out_dir) as partial:
        converter.convert(str(partial), quantization=quantization, force=True)
        longest = int(run.summary.get("max_target_len", 0))
        fields = {"quantization": quantization, "max_target_len": longest, "max_positions": MAX_POSITIONS}
        write_description(partial, run, describe(run, "ctranslate2", **fields))
    return out_dir


# ---- translation -------------------------------------------------------------------------------


class CTranslate2Translator(BatchTranslator):
    """A CTranslate2 export through `ctranslate2.Translator`, on the CPU, with the configuration's
    Prediction keys: any beam width, sampling and prefixes (CTranslate2's `target_prefix`).
    `threads` above 0 is the threads of its one worker (`intra_threads`; CTranslate2's
    `inter_threads` would be as many workers, each with that many threads, so it stays 1); 0
    leaves CTranslate2 its default. A folder CTranslate2 cannot load, or whose model cannot
    translate "Hello.", is a DataError naming it.
    """

    can_sample = can_force = can_score = True

    def __init__(self, folder: Path, description: dict, config: Config):
        self.source_vocab, self.target_vocab = load_vocabularies(folder)
        self.name, self.compute_type = description["run"], description["quantization"]
        self.max_source_len = positions = description["max_positions"]
        longest, shortest = config.output_lengths(description["max_target_len"])
        self.max_output_len = min(longest, positions)  # the position table's rows
        self.min_output_len = min(shortest, self.max_output_len)
        self.default, self.length_penalty = Decoding.of(config), config.length_penalty
        self.decode_batch_size = config.decode_batch_size
        self._source_tokens = ctranslate2_tokens(self.source_vocab)
        self._target_tokens = ctranslate2_tokens(self.target_vocab)
        self._target_ids = {token: i for i, token in enumerate(self._target_tokens)}
        self._folder, self._threads = folder, config.threads
        try:
            self._translator = self._load()
            self._decode([self.source_vocab.encode("Hello.")], None, self.default)
        except Exception as error:  # CTranslate2 raises RuntimeError and ValueError; a foreign model, KeyError
            problem = f"{type(error).__name__}: {first_line(error)}"
            raise DataError(f'{folder}: CTranslate2 cannot translate "Hello." with it ({problem})') from None

    def _load(self) -> ctranslate2.Translator:
        return ctranslate2.Translator(
            str(self._folder),
            device="cpu",
            compute_type=self.compute_type,
            inter_threads=1,
            intra_threads=self._threads,
        )

    @property
    def decoding(self) -> dict:
        return {**super().decoding, "ctranslate2": self.compute_type}

    def _read_target(self, text: str, limit: int | None = None) -> tuple[list[str], int, list[str]]:
        """A prefix or target as CTranslate2 takes it: the target tokens of its ids."""
        ids = self.target_vocab.encode(text)[:limit]
        return [self._target_tokens[i] for i in ids], len(ids), unknown_tokens(self.target_vocab, text, ids)

    def _spell(self, forced: list[str]) -> str:
        return self.target_vocab.decode([self._target_ids[token] for token in forced])

    def _score(self, sources: list[np.ndarray], targets: list[list[str]]) -> list[float]:
        """CTranslate2's `score_batch`: the log-probability of each target token and of its end marker."""
        tokens = [[self._source_tokens[i] for i in ids] for ids in sources]
        found = self._translator.score_batch(tokens, targets, max_batch_size=self.decode_batch_size, max_input_length=0)
        return [float(sum(result.log_probs)) for result in found]

    def _decode(
        self, sources: list[np.ndarray], prefixes: list[list[str]] | None, how: Decoding
    ) -> tuple[list[list[Hypothesis]], int]:
        """By search, beam search without a length penalty, returning the whole beam with
        log-probabilities, and greedy search, each sentence's candidates ranked by GNMT's penalty;
        by sampling, each sentence `n_best` times, CTranslate2 drawing (its own random numbers, seeded)."""
        tokens = [[self._source_tokens[i] for i in ids] for ids in sources]
        options = {
            "max_decoding_length": self.max_output_len,
            "min_decoding_length": self.min_output_len,
            "max_input_length": 0,  # cut at max_positions already
            "length_penalty": 0,
            "return_scores": True,
            "return_end_token": True,  # so that a length counts </s>, as the project's does
            "suppress_sequences": SUPPRESSED,
            "target_prefix": prefixes,
        }
        if how.mode == "sample":
            pools = self._samples(tokens, prefixes, options, how)
        else:
            pools = self._beams(tokens, options, how.beam_width)
        ranked = [
            sorted(
                ((output, score / length_penalty(len(output), self.length_penalty)) for output, score in pool),
                key=lambda candidate: -candidate[1],
            )[: how.n_best]
            for pool in pools
        ]
        at_limit = sum(1 for candidates in ranked if candidates[0][0][-1:] != [SPECIALS[2]])
        decode = self.target_vocab.decode  # through ids: byte pieces and <unk> decode as the run's do
        translations = [
            [(decode([self._target_ids[token] for token in output]), score) for output, score in candidates]
            for candidates in ranked
        ]
        return translations, at_limit

    def _beams(self, tokens: list[list[str]], options: dict, beam_width: int) -> list[list[tuple[list[str], float]]]:
        found = self._translator.translate_batch(tokens, beam_size=beam_width, num_hypotheses=beam_width, **options)
        pools = [list(zip(result.hypotheses, result.scores)) for result in found]
        if beam_width > 1:
            for pool, greedy in zip(pools, self._translator.translate_batch(tokens, beam_size=1, **options)):
                if greedy.hypotheses[0] not in [hypothesis for hypothesis, _ in pool]:
                    pool.append((greedy.hypotheses[0], greedy.scores[0]))
        return pools

    def _samples(self, tokens, prefixes, options: dict, how: Decoding) -> list[list[tuple[list[str], float]]]:
        """`how.n_best` samples of each sentence (each sentence repeated: one sample a row).

        Drawn by a translator loaded for the call: CTranslate2 seeds a worker thread's generator
        when the thread first draws, with the seed set then (its issue #1757), so only a fresh
        worker draws the same samples for the same seed. The load costs what loading the model
        does (read from the page cache, mostly)."""
        sampling, samples = how.sampling, how.n_best
        ctranslate2.set_random_seed(sampling.seed)
        repeated = [row for row in tokens for _ in range(samples)]
        prefixed = prefixes and [row for row in prefixes for _ in range(samples)]
        greedy = sampling.temperature == 0 or sampling.top_k == 1
        found = self._load().translate_batch(
            repeated,
            beam_size=1,
            sampling_topk=1 if greedy else sampling.top_k,  # 0: CTranslate2 draws among all
            sampling_topp=sampling.top_p,
            sampling_temperature=sampling.temperature or 1.0,
            **{**options, "target_prefix": prefixed},
        )
        return [
            [(result.hypotheses[0], result.scores[0]) for result in found[start : start + samples]]
            for start in range(0, len(found), samples)
        ]
