"""Writes bench/examples/verify/conformance.yaml, the built-in probes of ``orbench verify``.

Run once when the probe set changes, and bump VERSION: the file is package data, its
content hash is stored with every verify (``suite_hash``), so two verifies are comparable
only when they used the same file. Deterministic: the same VERSION writes the same file.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import yaml

VERSION = 1
OUT = Path(__file__).resolve().parents[1] / "bench" / "examples" / "verify" / "conformance.yaml"

FACTS = [  # (id, question, expected answer; checked case-insensitively as a substring)
    ("capital-france", "What is the capital of France?", "Paris"),
    ("capital-japan", "What is the capital of Japan?", "Tokyo"),
    ("capital-canada", "What is the capital of Canada?", "Ottawa"),
    ("capital-australia", "What is the capital of Australia?", "Canberra"),
    ("capital-kenya", "What is the capital of Kenya?", "Nairobi"),
    ("element-o", "Which chemical element has the symbol O?", "oxygen"),
    ("element-fe", "Which chemical element has the symbol Fe?", "iron"),
    ("element-na", "Which chemical element has the symbol Na?", "sodium"),
    ("planet-red", "Which planet is known as the Red Planet?", "Mars"),
    ("planet-largest", "Which is the largest planet of the Solar System?", "Jupiter"),
    ("author-hamlet", "Who wrote the play Hamlet? Give the surname.", "Shakespeare"),
    ("author-origin", "Who wrote On the Origin of Species? Give the surname.", "Darwin"),
    ("ocean-largest", "What is the largest ocean on Earth?", "Pacific"),
    ("continent-egypt", "On which continent is Egypt?", "Africa"),
    ("water-boil", "At sea level, at how many degrees Celsius does water boil? Give the number.", "100"),
    ("days-leap", "How many days does a leap year have? Give the number.", "366"),
    ("sides-hexagon", "How many sides does a hexagon have? Give the number.", "6"),
    ("light-fast", "Which is faster in a vacuum: light or sound?", "light"),
    ("metal-liquid", "Which metal is liquid at room temperature?", "mercury"),
    ("gas-plants", "Which gas do plants absorb from the air for photosynthesis?", "carbon dioxide"),
]
CHOICES = [  # multiple choice: (id, question, options, answer)
    ("mc-mammal", "Which of these is a mammal?", ["shark", "dolphin", "trout", "octopus"], "dolphin"),
    ("mc-prime", "Which of these numbers is prime?", ["21", "27", "29", "33"], "29"),
    ("mc-noble", "Which of these is a noble gas?", ["nitrogen", "neon", "chlorine", "hydrogen"], "neon"),
    ("mc-south", "Which of these countries is in South America?", ["Chile", "Spain", "Kenya", "Nepal"], "Chile"),
    ("mc-triangle", "How many degrees do the angles of a triangle add up to?",
     ["90", "180", "270", "360"], "180"),
    ("mc-binary", "What is 101 in binary, written in decimal?", ["3", "4", "5", "6"], "5"),
    ("mc-h2o", "What is H2O commonly called?", ["salt", "water", "sugar", "sand"], "water"),
    ("mc-week", "How many days are in a week?", ["5", "6", "7", "8"], "7"),
    ("mc-freeze", "At how many degrees Celsius does water freeze?", ["-10", "0", "10", "32"], "0"),
    ("mc-pi", "Which of these is closest to pi?", ["2.14", "3.14", "4.14", "1.41"], "3.14"),
]
TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Current weather in a city.",
        "parameters": {"type": "object", "additionalProperties": False, "required": ["city", "unit"],
                       "properties": {"city": {"type": "string"},
                                      "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}}}},
    {"type": "function", "function": {
        "name": "convert_currency", "description": "Convert an amount of money between currencies.",
        "parameters": {"type": "object", "additionalProperties": False, "required": ["amount", "from", "to"],
                       "properties": {"amount": {"type": "number"},
                                      "from": {"type": "string", "description": "ISO 4217 code"},
                                      "to": {"type": "string", "description": "ISO 4217 code"}}}}},
    {"type": "function", "function": {
        "name": "set_timer", "description": "Start a countdown timer.",
        "parameters": {"type": "object", "additionalProperties": False, "required": ["minutes"],
                       "properties": {"minutes": {"type": "integer", "minimum": 1}}}}},
]
CITIES = ["Oslo", "Lima", "Cairo", "Tokyo", "Paris", "Quito", "Hanoi", "Perth"]
PAIRS = [("EUR", "USD"), ("GBP", "JPY"), ("USD", "CHF"), ("CAD", "EUR")]
NO_CALL = [  # questions a tool is offered for but must not be called for
    ("What is 12 plus 30? Reply with the number only.", "42"),
    ("Name the capital of Italy in one word.", "Rome"),
    ("What colour do you get by mixing blue and yellow? One word.", "green"),
    ("How many legs does a spider have? Reply with the number only.", "8"),
    ("Spell the word 'cat' backwards.", "tac"),
    ("What is the opposite of 'hot'? One word.", "cold"),
    ("Is a tomato a fruit or a vegetable in botany? One word.", "fruit"),
    ("How many minutes are in one hour? Reply with the number only.", "60"),
    ("Translate 'thank you' into French.", "merci"),
    ("Which is larger, 9 or 12? Reply with the number only.", "12"),
]
SCHEMAS = [
    ("person", "Extract the person: 'Ada Lovelace was born in 1815 in London.'",
     {"type": "object", "additionalProperties": False, "required": ["name", "birth_year", "city"],
      "properties": {"name": {"type": "string"}, "birth_year": {"type": "integer"}, "city": {"type": "string"}}}),
    ("order", "Extract the order: 'Two lattes and one croissant for table 7.'",
     {"type": "object", "additionalProperties": False, "required": ["table", "items"],
      "properties": {"table": {"type": "integer"},
                     "items": {"type": "array", "items": {
                         "type": "object", "additionalProperties": False, "required": ["name", "quantity"],
                         "properties": {"name": {"type": "string"}, "quantity": {"type": "integer"}}}}}}),
    ("sentiment", "Classify the sentiment of: 'The battery died after an hour, very disappointing.'",
     {"type": "object", "additionalProperties": False, "required": ["sentiment"],
      "properties": {"sentiment": {"type": "string", "enum": ["negative", "neutral", "positive"]}}}),
    ("event", "Extract the event: 'The team meets on Friday at 14:00 in room B.'",
     {"type": "object", "additionalProperties": False, "required": ["day", "time", "room"],
      "properties": {"day": {"type": "string"}, "time": {"type": "string"}, "room": {"type": "string"}}}),
    ("flags", "Return whether 17 is odd and whether it is prime.",
     {"type": "object", "additionalProperties": False, "required": ["odd", "prime"],
      "properties": {"odd": {"type": "boolean"}, "prime": {"type": "boolean"}}}),
    ("book", "Extract the book: 'Dune, by Frank Herbert, 1965, 412 pages.'",
     {"type": "object", "additionalProperties": False, "required": ["title", "author", "year", "pages"],
      "properties": {"title": {"type": "string"}, "author": {"type": "string"},
                     "year": {"type": "integer"}, "pages": {"type": "integer"}}}),
]
JSON_OBJECT = [
    "Return a JSON object with the key 'colour' set to the colour of the sky on a clear day.",
    "Return a JSON object with keys 'a' and 'b' holding the numbers 3 and 4.",
    "Return a JSON object with the key 'languages' listing two programming languages.",
    "Return a JSON object with the key 'ok' set to true.",
]
STREAMING = [
    "Name three primary colours, separated by commas.",
    "List the first five letters of the alphabet, separated by spaces.",
    "Write one short sentence about the sea.",
    "Give two synonyms of 'happy', separated by a comma.",
    "Write the numbers from 1 to 8, separated by spaces.",
    "Name the four seasons, separated by commas.",
    "Write one short sentence about a cat.",
    "Give the days of the weekend, separated by 'and'.",
]


def _arithmetic(rng: random.Random, n: int) -> list[dict]:
    cases = []
    for i in range(n):
        op = ("+", "-", "*")[i % 3]
        a, b = (rng.randint(100, 999), rng.randint(100, 999)) if op != "*" else \
            (rng.randint(12, 99), rng.randint(12, 99))
        value = a + b if op == "+" else a - b if op == "-" else a * b
        word = {"+": "plus", "-": "minus", "*": "times"}[op]
        cases.append({"id": f"acc-arith-{i + 1:03d}", "tags": ["accuracy"],
                      "prompt": f"What is {a} {word} {b}? Reply with the number only.",
                      "checks": [{"numeric": value}]})
    return cases


def build() -> dict:
    rng = random.Random(f"orbench-conformance-{VERSION}")
    cases = _arithmetic(rng, 170)
    cases += [{"id": f"acc-fact-{cid}", "tags": ["accuracy"], "prompt": q + " Reply in a few words.",
               "checks": [{"icontains": a}]} for cid, q, a in FACTS]
    cases += [{"id": f"acc-{cid}", "tags": ["accuracy"],
               "prompt": f"{q} Options: {', '.join(opts)}. Reply with the option only.",
               "checks": [{"icontains": a}]} for cid, q, opts, a in CHOICES]
    calls = []
    for i, city in enumerate(CITIES):
        unit = ("celsius", "fahrenheit")[i % 2]
        calls.append((f"weather-{city.lower()}", f"What is the weather in {city} right now, in {unit}?",
                      "get_weather", {"city": city, "unit": unit}))
    for i, (src, dst) in enumerate(PAIRS * 2):
        amount = (25, 120, 75, 1000, 40, 310, 9, 64)[i]
        calls.append((f"convert-{i + 1}", f"How much is {amount} {src} in {dst} today?",
                      "convert_currency", {"amount": amount, "from": src, "to": dst}))
    for minutes in (3, 5, 10, 12, 25, 45):
        calls.append((f"timer-{minutes}", f"Please set a timer for {minutes} minutes.", "set_timer",
                      {"minutes": minutes}))
    cases += [{"id": f"tool-call-{cid}", "tags": ["tool_calls", "must_call"], "prompt": prompt,
               "tools": TOOLS, "tool_choice": "auto", "max_tokens": 128,
               "checks": [{"tool_call": {"name": name, "arguments": args}}]} for cid, prompt, name, args in calls]
    cases += [{"id": f"tool-none-{i + 1:02d}", "tags": ["tool_calls", "must_not_call"], "prompt": q,
               "tools": TOOLS, "tool_choice": "auto", "max_tokens": 48,
               "checks": [{"icontains": a}]} for i, (q, a) in enumerate(NO_CALL)]
    cases += [{"id": f"struct-schema-{cid}", "tags": ["structured_output", "json_schema"], "prompt": prompt,
               "max_tokens": 256, "response_format": {"type": "json_schema", "json_schema": {
                   "name": cid, "strict": True, "schema": schema}},
               "checks": [{"json_schema": schema}]} for cid, prompt, schema in SCHEMAS]
    cases += [{"id": f"struct-object-{i + 1}", "tags": ["structured_output", "json_object"],
               "prompt": prompt, "max_tokens": 128, "response_format": {"type": "json_object"},
               "checks": [{"json_valid": True}]} for i, prompt in enumerate(JSON_OBJECT)]
    cases += [
        {"id": "param-max-tokens", "tags": ["parameters", "max_tokens"], "max_tokens": 16,
         "prompt": "Write a 300-word story about a lighthouse keeper."},
        {"id": "param-stop", "tags": ["parameters", "stop"], "max_tokens": 96,
         "prompt": "Count from 1 to 20, separated by commas and spaces, and nothing else."},
        {"id": "param-temperature", "tags": ["parameters", "temperature"], "max_tokens": 48,
         "prompt": "Describe a sunrise in one sentence."},
        {"id": "param-seed", "tags": ["parameters", "seed"], "max_tokens": 48,
         "prompt": "Invent a name for a small cafe."},
        {"id": "param-reasoning", "tags": ["parameters", "reasoning"], "max_tokens": 1024,
         "prompt": "Is 221 a prime number? Answer yes or no."},
    ]
    cases += [{"id": f"stream-{i + 1}", "tags": ["streaming"], "prompt": p, "max_tokens": 64}
              for i, p in enumerate(STREAMING)]
    return {
        "name": f"orbench-conformance-v{VERSION}",
        "description": "Built-in probes of orbench verify (generated by scripts/make_conformance_suite.py; "
                       "do not edit by hand, bump VERSION there). Tags say which dimension a case probes.",
        "models": ["meta-llama/llama-3.3-70b-instruct"],
        "warmup": False,
        "defaults": {"temperature": 0, "max_tokens": 32},
        "cases": cases,
    }


if __name__ == "__main__":
    OUT.parent.mkdir(parents=True, exist_ok=True)
    text = "# GENERATED by scripts/make_conformance_suite.py: edit that, bump its VERSION, rerun.\n"
    text += yaml.safe_dump(build(), sort_keys=False, width=120, allow_unicode=True)
    OUT.write_text(text, encoding="utf-8")
    sys.stdout.write(f"{OUT}: {len(build()['cases'])} cases\n")
