#!/usr/bin/env python3
"""generate.py - print a model's greedy continuation of a prompt through the
Python bindings (pagoda.py, ctypes over libpagoda.so):

    PAGODA_LIB=build/libpagoda.so python3 examples/python/generate.py \\
        MODEL TOKENIZER "Once upon a time" 252

prints the prompt and its continuation, as `pagoda generate` does (for
stories260K: the golden text of shared/data/golden/stories260K_greedy.jsonl).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pagoda import LLM, SamplingParams, PagodaError  # noqa: E402


def main(argv):
    if len(argv) != 5:
        print(f"usage: {argv[0]} MODEL TOKENIZER PROMPT MAX_TOKENS", file=sys.stderr)
        return 2
    model, tokenizer, prompt, max_tokens = argv[1], argv[2], argv[3], int(argv[4])
    try:
        with LLM(model, tokenizer=tokenizer, num_threads=1) as llm:
            (out,) = llm.generate([prompt], SamplingParams(temperature=0.0, max_tokens=max_tokens))
    except PagodaError as e:
        print(f"generate.py: {e}", file=sys.stderr)
        return 1
    print(out.prompt + out.outputs[0].text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
