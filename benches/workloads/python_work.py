"""python: a real program's allocation pattern - CPython with PYTHONMALLOC=malloc.

With PYTHONMALLOC=malloc every object (not only those above 512 bytes) comes from the C
malloc, so the preloaded allocator serves CPython's whole object churn. The script runs a
fixed, seeded mix of what Python programs do: records as dicts and small objects, JSON
round trips, string building and splitting, sorting, sets, and a growing-then-shrinking
cache. Every phase checks its own result; the checksum is a SHA-256 over the results.

Usage: python3 python_work.py 1 SCALE   (THREADS is accepted for uniformity; must be 1)
"""

import hashlib
import json
import random
import sys


class Point:
    __slots__ = ("x", "y", "tag")

    def __init__(self, x, y, tag):
        self.x = x
        self.y = y
        self.tag = tag


def fail(msg):
    print(f"python_work: FAILED: {msg}", file=sys.stderr)
    sys.exit(1)


def records(rng, n):
    rows = []
    for i in range(n):
        rows.append(
            {
                "id": i,
                "name": "user%06d" % rng.randrange(10**6),
                "score": rng.random(),
                "tags": [
                    rng.choice("abcdefgh") * rng.randint(1, 5) for _ in range(rng.randint(0, 6))
                ],
            }
        )
    text = json.dumps(rows)
    back = json.loads(text)
    if back != rows:
        fail("json round trip changed the records")
    back.sort(key=lambda r: (r["name"], r["id"]))
    return len(text), back[0]["name"], back[-1]["id"]


def strings(rng, n):
    parts = []
    for _ in range(n):
        word = "".join(chr(97 + rng.randrange(26)) for _ in range(rng.randint(1, 12)))
        parts.append(word.upper() if rng.random() < 0.1 else word)
    text = " ".join(parts)
    words = text.split(" ")
    if words != parts:
        fail("split did not give back the words")
    counts = {}
    for w in words:
        counts[w.lower()] = counts.get(w.lower(), 0) + 1
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    return len(text), top


def objects(rng, n):
    pts = [Point(rng.randrange(1000), rng.randrange(1000), str(i)) for i in range(n)]
    pts.sort(key=lambda p: (p.x, p.y, p.tag))
    s = set((p.x, p.y) for p in pts)
    total = sum(p.x * p.y for p in pts)
    return total, len(s), pts[len(pts) // 2].tag


def cache(rng, n):
    lru = {}
    hits = 0
    for i in range(n):
        k = rng.randrange(n // 4 + 1)
        if k in lru:
            hits += 1
            lru[k] = lru.pop(k)
        else:
            lru[k] = [k] * rng.randint(1, 20)
        if len(lru) > n // 16 + 1:
            del lru[next(iter(lru))]
    if any(v[0] != k for k, v in lru.items()):
        fail("cache value corrupted")
    return hits, len(lru)


def main():
    if len(sys.argv) != 3 or sys.argv[1] != "1":
        print("usage: python_work.py 1 SCALE", file=sys.stderr)
        sys.exit(2)
    scale = float(sys.argv[2])
    rng = random.Random(20240521)
    h = hashlib.sha256()
    def n(base):
        return max(100, int(base * scale))

    for _ in range(2):
        for result in (
            records(rng, n(15000)),
            strings(rng, n(60000)),
            objects(rng, n(60000)),
            cache(rng, n(150000)),
        ):
            h.update(repr(result).encode())
    print("checksum " + h.hexdigest()[:16])


main()
