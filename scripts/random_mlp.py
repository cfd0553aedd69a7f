#!/usr/bin/env python3
"""Write a random tanh MLP with MSE data in the model format `curvature analyze` reads.

Standard library only, for trying `analyze` on models of any size without PyTorch: weights
and biases uniform in ±1/√fan_in, `x` and `y` uniform in ±1, all float64, seeded. For
example, a model of about a million parameters and the memory it takes:

    python3 scripts/random_mlp.py /tmp/m1.safetensors --widths 64,700,700,700,10 --samples 256
    /usr/bin/time -v target/release/curvature analyze /tmp/m1.safetensors \\
        --out /tmp/r.safetensors --probes 4
"""

import argparse
import json
import random
import struct
from array import array


def write_mlp(path, widths, samples, seed=0):
    """Writes the model of `widths` (inputs first) with `samples` samples to `path`."""
    rng = random.Random(seed)

    def uniform(count, scale):
        return array("d", (rng.uniform(-scale, scale) for _ in range(count)))

    tensors = []
    for i, (fan_in, fan_out) in enumerate(zip(widths, widths[1:])):
        scale = fan_in ** -0.5
        tensors.append((f"{i}.weight", [fan_out, fan_in], uniform(fan_out * fan_in, scale)))
        tensors.append((f"{i}.bias", [fan_out], uniform(fan_out, scale)))
    tensors.append(("x", [samples, widths[0]], uniform(samples * widths[0], 1.0)))
    tensors.append(("y", [samples, widths[-1]], uniform(samples * widths[-1], 1.0)))

    header = {
        "__metadata__": {
            "widths": json.dumps(widths),
            "activations": json.dumps(["tanh"] * (len(widths) - 2)),
            "final_activation": "None",
            "loss": "mse",
        }
    }
    offset = 0
    for name, shape, values in tensors:
        size = 8 * len(values)
        header[name] = {"dtype": "F64", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        for _, _, values in tensors:
            f.write(values.tobytes())
    return sum(a * b + b for a, b in zip(widths, widths[1:]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="the safetensors file to write")
    parser.add_argument("--widths", required=True, help="layer widths, e.g. 64,700,700,10")
    parser.add_argument("--samples", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    widths = [int(w) for w in args.widths.split(",")]
    params = write_mlp(args.out, widths, args.samples, args.seed)
    print(f"wrote {args.out}: widths {widths}, {args.samples} samples, P = {params}")


if __name__ == "__main__":
    main()
