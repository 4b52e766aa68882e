"""`parabench env`: what parabench detects on this machine."""
from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("env", help="show detected hardware and software (CUDA, NVML, versions)",
                       description="Show what parabench detects: CUDA devices, NVML, torch, "
                       "timm, CPU, threads, git state. The same data is stored with every run.")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=main)


def main(args) -> int:
    from ..environment import collect

    env = collect()
    if args.json:
        print(json.dumps(env, indent=2))
        return 0
    gpu, nvml = env["gpu"], env["nvml"]
    rows = [
        ("machine", env["machine"]),
        ("python", env["python"]),
        ("torch", f"{env['torch']} (CUDA build {env['cuda'] or 'none'})"),
        ("timm", env["timm"]),
        ("cpu", f"{env['cpu']}, {env['cpu_count']} cores, torch threads {env['threads']}"),
        ("cuda", f"{gpu['count']} x {gpu['name']} (sm {gpu['capability']}, "
                 f"{gpu['memory_bytes'] / 2**30:.0f} GiB, bf16 {'yes' if gpu['bf16'] else 'no'})"
         if gpu["available"] else f"not available: {gpu['reason']}"),
        ("nvml", f"driver {nvml['driver']}, {len(nvml['devices'])} device(s)"
         if nvml["available"] else f"not available: {nvml['reason']}"),
        ("git", f"{env['git']['commit'] or 'unknown'}"
                f"{' (dirty)' if env['git']['dirty'] else ''}"),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    return 0
