"""Time FAQ matching: milliseconds per question with the whole knowledge base loaded, per locale.

    python benchmarks/faq.py [--repeat 20]

Every evaluation question and off-topic message of tests/data/faq_*_<locale>.toml is matched
`--repeat` times; the target is under 5 ms per question (mean and 99th percentile).
"""

from __future__ import annotations

import argparse
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.domain.faq import DEFAULT_FAQ_DIR, Matcher, load_knowledge_base  # noqa: E402

TARGET_MS = 5.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20, help="passes over the questions (default 20)")
    arguments = parser.parse_args()
    began = time.perf_counter()
    bases = load_knowledge_base(DEFAULT_FAQ_DIR)
    print(f"knowledge base loaded in {(time.perf_counter() - began) * 1000:.0f} ms")
    worst = 0.0
    for locale, base in bases.items():
        began = time.perf_counter()
        matcher = Matcher(base)
        built = (time.perf_counter() - began) * 1000
        texts = []
        for path in sorted((ROOT / "tests" / "data").glob(f"faq_*_{locale}.toml")):
            data = tomllib.loads(path.read_text("utf-8"))
            texts += [item["text"] for item in data["questions"]] + list(data["off_topic"])
        for text in texts:  # warm the caches once, as a running bot would be
            matcher.match(text)
        timings = []
        for _ in range(arguments.repeat):
            for text in texts:
                start = time.perf_counter()
                matcher.match(text)
                timings.append((time.perf_counter() - start) * 1000)
        timings.sort()
        mean = sum(timings) / len(timings)
        p99 = timings[min(len(timings) - 1, int(len(timings) * 0.99))]
        worst = max(worst, p99)
        verdict = "ok" if p99 < TARGET_MS else f"above the {TARGET_MS} ms target"
        print(
            f"{locale:<6} {len(base)} entries, matcher built in {built:.0f} ms; "
            f"{len(timings)} matches: mean {mean:.3f} ms, p99 {p99:.3f} ms ({verdict})"
        )
    return 0 if worst < TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
