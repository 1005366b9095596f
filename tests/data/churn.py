# Churns dicts, lists and strings across threads; prints a deterministic digest.
import hashlib
import threading

def work(seed, out):
    h = hashlib.sha256()
    d = {}
    for i in range(60000):
        k = "k%d_%d" % (seed, i % 5000)
        d[k] = [str(i) * (i % 7 + 1), {"n": i, "s": k.upper()}]
        if i % 3 == 0:
            d.pop("k%d_%d" % (seed, (i * 7) % 5000), None)
        if i % 1000 == 0:
            h.update(("|".join(sorted(d)[:50])).encode())
    h.update(repr(sorted(d.items())[:100]).encode())
    out[seed] = h.hexdigest()

out = {}
threads = [threading.Thread(target=work, args=(s, out)) for s in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
for s in sorted(out):
    print(s, out[s])
