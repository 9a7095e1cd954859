"""Labelled tasks for prompting a language model, all shipped with the install (no download).

    sentiment   Pang & Lee's 200 movie-review sentences (gensim's test data): negative / positive
    arithmetic  one-step word problems with a small whole-number answer, generated from a seed
    topic       short news-style sentences on four subjects, generated from a seed

Each task is a list of (text, label index) with label words, an instruction, and the field names of
its prompt format ("Review: ...\\nSentiment: positive"). The generated sets draw every slot (names,
objects, numbers, places) independently, so no two items are the same sentence.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Task:
    name: str
    items: tuple[tuple[str, int], ...]      # (input text, index into labels)
    labels: tuple[str, ...]                 # the words scored as answers
    instruction: str
    input_name: str                         # "Review", "Question", "Text"
    output_name: str                        # "Sentiment", "Answer", "Topic"


def sentiment() -> Task:
    from dlroadmap.data.embedded import polarity

    texts, labels = polarity()
    return Task("sentiment", tuple(zip(texts, labels)), ("negative", "positive"),
                "Classify the sentiment of each movie review as positive or negative.", "Review", "Sentiment")


NAMES = ["Anna", "Ben", "Carla", "David", "Emma", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kemal", "Lena", "Maya", "Noah",
         "Omar", "Priya", "Quentin", "Rosa", "Sami", "Tara"]
THINGS = ["apples", "books", "pencils", "stamps", "marbles", "cookies", "shells", "stickers", "coins", "cards", "eggs", "flowers"]


def arithmetic(n: int = 240, seed: int = 0, max_answer: int = 20) -> Task:
    """Add or take away: 'Anna has 7 shells. She finds 5 more. How many shells does Anna have now?' -> 12."""
    rng = random.Random(seed)
    items: list[tuple[str, int]] = []
    seen: set[str] = set()
    while len(items) < n:
        name, thing = rng.choice(NAMES), rng.choice(THINGS)
        if rng.random() < 0.5:
            a = rng.randint(1, max_answer - 1)
            b = rng.randint(1, max_answer - a)
            verb = rng.choice(["finds", "buys", "is given", "collects"])
            text, answer = f"{name} has {a} {thing}. {name} {verb} {b} more. How many {thing} does {name} have now?", a + b
        else:
            a = rng.randint(2, max_answer)
            b = rng.randint(1, a - 1)
            verb = rng.choice(["gives away", "loses", "sells", "uses"])
            text, answer = f"{name} has {a} {thing}. {name} {verb} {b} of them. How many {thing} does {name} have left?", a - b
        if text not in seen:
            seen.add(text)
            items.append((text, answer))
    return Task("arithmetic", tuple(items), tuple(str(i) for i in range(max_answer + 1)),
                "Answer each question with a number.", "Question", "Answer")


TOPICS = {
    "sports": (["The {team} beat {team2} {a}-{b} in {place} on {day}.", "{name} scored twice as the {team} won the cup final.",
                "The {team} coach was sacked after {a} defeats in a row.", "{name} broke the national record in the {dist} metres."],
               ["team", "team2", "name", "dist"]),
    "weather": (["Heavy rain is expected in {place} on {day}, with up to {a} millimetres.", "Temperatures in {place} will reach {a} degrees on {day}.",
                 "A storm warning was issued for {place} as winds reached {a} km/h.", "Snow closed the roads around {place} for {a} hours."],
                ["place"]),
    "food": (["The new {dish} at the {place} market costs {a} euros.", "{name} shared a recipe for {dish} that takes {a} minutes.",
              "A bakery in {place} sold {a} loaves of bread before noon.", "Critics praised the {dish} served by chef {name} in {place}."],
             ["dish", "name"]),
    "technology": (["{company} released a phone with a {a}-hour battery on {day}.", "{company} fixed a security flaw affecting {a} million users.",
                    "Engineers at {company} built a chip that is {a} times faster.", "{name} launched an app in {place} that reached {a} thousand downloads."],
                   ["company", "name"]),
}
SLOTS = {"team": ["Tigers", "Rovers", "United", "Falcons", "Wolves", "Rangers"], "team2": ["City", "Athletic", "Harbour", "Lions", "Saints"],
         "place": ["Lyon", "Porto", "Oslo", "Leeds", "Graz", "Bilbao", "Turin", "Ghent"],
         "day": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
         "name": NAMES, "dist": ["100", "200", "400", "800", "1500"],
         "dish": ["soup", "curry", "pie", "salad", "noodle dish", "stew"],
         "company": ["Nordtek", "Zentro", "Acumen Labs", "Brightwave", "Kappa Systems"]}


def topic(n: int = 240, seed: int = 0) -> Task:
    rng = random.Random(seed)
    names = list(TOPICS)
    items: list[tuple[str, int]] = []
    seen: set[str] = set()
    while len(items) < n:
        label = len(items) % len(names)                     # balanced classes
        template = rng.choice(TOPICS[names[label]][0])
        fill = {k: rng.choice(v) for k, v in SLOTS.items()} | {"a": rng.randint(2, 90), "b": rng.randint(0, 5)}
        text = template.format(**fill)
        if text not in seen:
            seen.add(text)
            items.append((text, label))
    rng.shuffle(items)
    return Task("topic", tuple(items), tuple(names), "Classify each news sentence by topic: sports, weather, food or technology.",
                "Text", "Topic")


TASKS = {"sentiment": sentiment, "arithmetic": arithmetic, "topic": topic}
