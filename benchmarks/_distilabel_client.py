"""Run by endpoint_throughput.py with the python of a venv where distilabel is installed (it pins its own deps).

Arguments: URL MESSAGES_JSON MAX_NEW_TOKENS BATCH (0: one generate() call over every input).
Prints [wall seconds, client CPU seconds, non-empty outputs] as JSON on its last line.
"""

import json
import resource
import sys
import time
import warnings

warnings.filterwarnings("ignore")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    url, path, max_new_tokens, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    with open(path) as f:
        messages = json.load(f)
    from distilabel.models.llms import InferenceEndpointsLLM

    llm = InferenceEndpointsLLM(base_url=url)
    llm.load()
    chunks = [messages[i : i + batch] for i in range(0, len(messages), batch)] if batch else [messages]
    cpu, wall = cpu_seconds(), time.perf_counter()
    outputs = []
    for chunk in chunks:
        outputs += llm.generate_outputs(inputs=chunk, num_generations=1, max_new_tokens=max_new_tokens, temperature=0.7, top_p=0.95)
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    ok = sum(1 for o in outputs if o["generations"] and o["generations"][0])
    print(json.dumps([wall, cpu, ok]))


if __name__ == "__main__":
    main()
