"""A writer that appends to a recording until it is killed (used by test_recording_crash.py).

Prints one line per completed operation, flushed, *after* the writer method returned:
``spectrum NAME K`` (intensity = K + axis/1000), ``results NAME K`` and ``rows NAME TOTAL``
(stack rows r hold r + axis/1000). Everything printed must survive any kill.
"""

import sys

import numpy as np

import fol.io.recording_writer as rw
from fol.io.recording import RecordingWriter
from fol.spectrum import Spectrum

AXIS = np.linspace(200.0, 1800.0, 128)


def main(path: str, start: int, seed: int) -> None:
    rw.ASSEMBLE_RECORDS = 4  # assemble often: the moment a crash is most dangerous
    rng = np.random.default_rng(seed)
    k = start
    with RecordingWriter(path, "a") as w:
        print("ready", flush=True)
        while True:
            if rng.random() < 0.15:
                app = w.create_stack(f"stack_{k}", AXIS, "raman", "counts", chunk_rows=4)
                total = 0
                for _ in range(int(rng.integers(1, 4))):
                    n = int(rng.integers(1, 6))
                    app.append(np.arange(total, total + n)[:, None] + AXIS / 1000.0,
                               expected=[{"caffeine": 1.0}] * n if rng.random() < 0.5 else None)
                    total += n
                    print(f"rows stack_{k} {total}", flush=True)
            else:
                name = w.add_spectrum(Spectrum(AXIS, k + AXIS / 1000.0, "raman", "counts", {}), name=f"e_{k}")
                print(f"spectrum {name} {k}", flush=True)
                if rng.random() < 0.3:
                    w.set_results(name, [{"verdict": "identified", "k": k}], {"fol_version": "t", "library_sha256": ""})
                    print(f"results {name} {k}", flush=True)
            k += 1


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
