"""Prints each group's timings as ratios to torch.compile and eager, from the same run."""


def pytest_terminal_summary(terminalreporter, config):
    session = getattr(config, "_benchmarksession", None)
    if session is None or not session.benchmarks:
        return
    groups = {}
    for bench in session.benchmarks:
        groups.setdefault(bench.group, {})[bench.extra_info.get("impl", bench.name)] = bench
    terminalreporter.section("elbits: median time ratios (same run, same inputs)")
    for group, impls in sorted(groups.items(), key=lambda kv: str(kv[0])):
        rates = {k: b.extra_info["images_per_s"] for k, b in impls.items() if "images_per_s" in b.extra_info}
        if rates:
            terminalreporter.write_line(
                f"{group}: " + ", ".join(f"{k} {v:.0f} images/s" for k, v in rates.items())
            )
        if "fused" not in impls:
            continue
        fused = impls["fused"].stats.median
        line = [f"{group}: fused {fused * 1e3:.3f} ms"]
        for other in ("eager", "compile"):
            if other in impls:
                o = impls[other].stats.median
                line.append(
                    f"{other} {o * 1e3:.3f} ms (fused/{other} = {fused / o:.2f}, {o / fused:.1f}x faster)"
                )
        kern = {k: b.extra_info["kernel_ms"] for k, b in impls.items() if "kernel_ms" in b.extra_info}
        if kern:
            line.append("GPU kernel ms " + ", ".join(f"{k} {v:.3f}" for k, v in sorted(kern.items())))
        mem = {
            k: b.extra_info.get("allocated_mb") for k, b in impls.items() if "allocated_mb" in b.extra_info
        }
        if mem:
            line.append("allocated MB " + ", ".join(f"{k} {v:.1f}" for k, v in sorted(mem.items())))
        terminalreporter.write_line("; ".join(line))
