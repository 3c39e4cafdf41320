"""pagoda.py - Python bindings for Pagoda's offline generation API
(pagoda/llm.h) over libpagoda.so with ctypes: standard library only.

The shape follows vLLM:

    from pagoda import LLM, SamplingParams
    llm = LLM("stories260K.bin", tokenizer="tok512.bin")
    for out in llm.generate(["Once upon a time"], SamplingParams(temperature=0, max_tokens=64)):
        print(out.prompt + out.outputs[0].text)

    from pagoda import run_experiment
    for row in run_experiment("experiments/quickstart.ini", "/tmp/results"):
        print(row["run"], row["output_throughput"])

The library is found from $PAGODA_LIB (a path to libpagoda.so), else by the
dynamic loader's search (install it with `cmake --install`, or set
LD_LIBRARY_PATH). Errors raise PagodaError with the library's message.
"""
import csv
import ctypes
import ctypes.util
import os
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

__all__ = ["LLM", "SamplingParams", "RequestOutput", "CompletionOutput", "PagodaError", "version", "run_experiment"]


class PagodaError(RuntimeError):
    """A Pagoda call failed; the message is pgd_last_error()."""


def _load():
    path = os.environ.get("PAGODA_LIB") or ctypes.util.find_library("pagoda") or "libpagoda.so"
    try:
        lib = ctypes.CDLL(path)
    except OSError as e:
        raise PagodaError(f"cannot load {path}: {e} (set PAGODA_LIB to libpagoda.so)") from None
    c_char_pp = ctypes.POINTER(ctypes.c_char_p)
    lib.pgd_last_error.restype = ctypes.c_char_p
    lib.pgd_llm_create.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_void_p)]
    lib.pgd_llm_create.restype = ctypes.c_int
    lib.pgd_llm_destroy.argtypes = [ctypes.c_void_p]
    lib.pgd_llm_destroy.restype = None
    lib.pgd_llm_generate.argtypes = [ctypes.c_void_p, c_char_pp, ctypes.c_int, ctypes.c_int, ctypes.c_float,
                                     ctypes.c_int, ctypes.c_float, ctypes.c_uint64, ctypes.POINTER(ctypes.c_void_p)]
    lib.pgd_llm_generate.restype = ctypes.c_int
    lib.pgd_llm_free_text.argtypes = [ctypes.c_void_p]
    lib.pgd_llm_free_text.restype = None
    lib.pgd_llm_context.argtypes = [ctypes.c_void_p]
    lib.pgd_llm_context.restype = ctypes.c_int
    lib.pgd_version_string.restype = ctypes.c_char_p
    lib.pgd_experiment_run_file.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
    lib.pgd_experiment_run_file.restype = ctypes.c_int
    return lib


_lib = None


def _libpagoda():
    global _lib
    if _lib is None:
        _lib = _load()
    return _lib


def _check(status):
    if status != 0:
        raise PagodaError(_libpagoda().pgd_last_error().decode("utf-8", "replace"))


def version() -> str:
    """The library's version, commit and build options."""
    return _libpagoda().pgd_version_string().decode()


def run_experiment(config: str, output_dir: Optional[str] = None) -> List[dict]:
    """Run every run of an experiment config (as `pagoda run --quiet`) and
    return its runs.csv rows as dicts (values as text); the results are in
    <output_dir>/<experiment>/ (output_dir None = the config's)."""
    lib = _libpagoda()
    out = ctypes.c_void_p()
    _check(lib.pgd_experiment_run_file(config.encode(), output_dir.encode() if output_dir else None,
                                       ctypes.byref(out)))
    expdir = ctypes.string_at(out).decode()
    lib.pgd_llm_free_text(out)
    with open(os.path.join(expdir, "runs.csv"), newline="") as f:
        return list(csv.DictReader(f))


@dataclass
class SamplingParams:
    """As vLLM's: temperature 0 is greedy; top_k 0 / top_p 1 disable those filters."""
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_tokens: int = 16
    seed: int = 0


@dataclass
class CompletionOutput:
    index: int
    text: str


@dataclass
class RequestOutput:
    prompt: str
    outputs: List[CompletionOutput] = field(default_factory=list)


class LLM:
    """A model loaded on the CPU backend; generate() runs prompts together through the engine."""

    def __init__(self, model: str, tokenizer: Optional[str] = None, num_threads: int = 0):
        lib = _libpagoda()
        self._h = ctypes.c_void_p()
        _check(lib.pgd_llm_create(model.encode(), tokenizer.encode() if tokenizer else None, num_threads,
                                  ctypes.byref(self._h)))

    def generate(self, prompts, sampling_params: Optional[SamplingParams] = None) -> List[RequestOutput]:
        if isinstance(prompts, str):
            prompts = [prompts]
        sp = sampling_params or SamplingParams()
        n = len(prompts)
        if n == 0:
            return []
        arr = (ctypes.c_char_p * n)(*[p.encode() for p in prompts])
        texts = (ctypes.c_void_p * n)()
        lib = _libpagoda()
        _check(lib.pgd_llm_generate(self._h, arr, n, sp.max_tokens, sp.temperature, sp.top_k, sp.top_p, sp.seed,
                                    texts))
        outs = []
        for i, p in enumerate(prompts):
            text = ctypes.string_at(texts[i]).decode("utf-8", "replace")
            lib.pgd_llm_free_text(texts[i])
            outs.append(RequestOutput(prompt=p, outputs=[CompletionOutput(index=0, text=text)]))
        return outs

    @property
    def context_length(self) -> int:
        return _libpagoda().pgd_llm_context(self._h)

    def close(self):
        if self._h:
            _libpagoda().pgd_llm_destroy(self._h)
            self._h = ctypes.c_void_p()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
