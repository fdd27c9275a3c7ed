"""What a bench run prints: the machine, the settings, the tables of each mode or the soak's samples, the
errors and the billing check."""

import argparse
import json
from typing import Any

from bench import litellm_proxy, report, soak
from bench.load import MODES, CellResult
from bench.stack import GATEWAY_HTTP, GATEWAY_LOOP, Database


def settled(state: dict[str, Any]) -> bool:
    return not (
        state["reservations"].get("held") or state["reserved_micro_usd"] or state["unflushed_micro_usd"]
    )


def settings_of(
    args: argparse.Namespace, database: Database, background: list[float | None], litellm: str | None
) -> dict[str, Any]:
    settings = {
        "other_processes_cpu_busy_percent_before_after": [
            None if share is None else round(share * 100, 1) for share in background
        ],
        "concurrency": args.concurrency,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "workers": args.workers,
        "tokens": args.tokens,
        "modes": args.modes,
        "ingress_format": args.format,
        "database": database.label,
        "upstream_delay_ms": args.upstream_delay_ms,
        "token_interval_ms": args.token_interval_ms,
        "server": f"uvicorn config.asgi:application --workers {args.workers} --loop {GATEWAY_LOOP} "
        f"--http {GATEWAY_HTTP} --no-access-log --no-server-header",
        "bare_loop": GATEWAY_LOOP if args.bare_balanced else "uvloop",
        "env": "HYPERINFER_ENV=production DEBUG=false",
    }
    if args.soak:
        settings |= {"soak_requests": args.soak, "duration_s": None, "warmup_s": None}
    if litellm:
        settings["litellm"] = f"LiteLLM proxy {litellm}: {litellm_proxy.describe(args.workers)}"
    return settings


def _background_text(background: list[float | None]) -> str:
    return " / ".join("-" if share is None else f"{share * 100:.0f}%" for share in background)


def print_results(
    args: argparse.Namespace,
    database: Database,
    machine: dict[str, Any],
    background: list[float | None],
    cells: list[CellResult],
    billing: dict[str, Any] | None,
    litellm: str | None,
) -> None:
    settings = settings_of(args, database, background, litellm)
    print()
    print(report.machine_text(machine))
    print(
        f"Settings: {settings['server']}; {settings['env']}; {settings['database']}; "
        f"clients speak {args.format} to the gateway; the bare proxy's loop: {settings['bare_loop']}\n"
        f"          concurrency {','.join(map(str, args.concurrency))}; {args.warmup:g} s warm-up + "
        f"{args.duration:g} s measured per cell; {args.tokens} tokens per answer; "
        f"upstream delay {args.upstream_delay_ms:g} ms, {args.token_interval_ms:g} ms between frames\n"
        f"          machine CPU busy with other processes, before / after the run: "
        f"{_background_text(background)}"
    )
    if litellm:
        print(f"          {settings['litellm']}")
    width = 4 if litellm else 3  # the targets of one cell, in the order drive() ran them
    for mode in args.modes:
        stream = MODES[mode]
        mode_cells = [cell for cell in cells if cell.stream == stream]
        rows = [tuple(mode_cells[i : i + width]) for i in range(0, len(mode_cells), width)]
        baseline = "floor" if args.floor else "bare"
        print(
            f"\n{mode} (latencies in ms; + = gateway minus {'metered floor' if args.floor else 'bare proxy'})"
        )
        print(report.table(rows, stream, baseline=baseline))
    errors = report.error_lines(cells)
    print("\nErrors (warm-up included):" if errors else "\nErrors: none")
    for line in errors:
        print(line)
    if billing is not None:
        answered = sum(cell.answered for cell in cells if cell.target == "gateway") + len(args.modes)
        print()
        print("\n".join(_billing_lines(billing, answered)))


def _billing_lines(billing: dict[str, Any], answered: int) -> list[str]:
    """The billing check: every 2xx answer has one `completed` generation, debits = costs, balance =
    ledger sum, nothing held or unwritten."""
    generations = billing["generations"]
    lines = [
        f"Billing check ({billing['meter']} meter): {answered} gateway answers (2xx, warm-up and "
        f"pre-flight included); generation records {json.dumps(generations)}; "
        f"charged {billing['generation_cost_micro_usd']} µUSD, usage debits "
        f"{billing['usage_debits_micro_usd']} µUSD; balance {billing['balance_micro_usd']} µUSD, "
        f"ledger sum {billing['ledger_sum_micro_usd']} µUSD; "
        f"still reserved {billing['reserved_micro_usd']} µUSD, "
        f"unflushed {billing['unflushed_micro_usd']} µUSD"
    ]
    if not _billed_exactly(billing, answered):
        lines.append(
            "  MISMATCH: generation records differ from the answers, the ledger from the generations or "
            "the balance, or credits are still held or unwritten"
        )
    return lines


def _billed_exactly(billing: dict[str, Any], answered: int) -> bool:
    return (
        billing["generations"].get("completed", 0) == answered
        and settled(billing)
        and billing["usage_debits_micro_usd"] == billing["generation_cost_micro_usd"]
        and billing["balance_micro_usd"] == billing["ledger_sum_micro_usd"]
    )


def print_soak(
    args: argparse.Namespace,
    database: Database,
    machine: dict[str, Any],
    background: list[float | None],
    result: soak.SoakResult,
    billing: dict[str, Any],
) -> None:
    settings = settings_of(args, database, background, None)
    print()
    print(report.machine_text(machine))
    print(
        f"Settings: {settings['server']}; {settings['env']}; {settings['database']}; "
        f"clients speak {args.format} to the gateway\n"
        f"          {args.tokens} tokens per answer; upstream delay {args.upstream_delay_ms:g} ms, "
        f"{args.token_interval_ms:g} ms between frames; "
        f"memory sampled at every twentieth of the requests, the warm-up's after {result.warmup:,} "
        f"requests and {soak.WARMUP_SECONDS:g} s\n"
        f"          machine CPU busy with other processes, before / after the run: "
        f"{_background_text(background)}"
    )
    print()
    print(soak.text(result, args.modes, args.workers))
    errors = report.error_lines(result.cells)
    print("\nErrors:" if errors else "\nErrors: none")
    for line in errors:
        print(line)
    print()
    print("\n".join(_billing_lines(billing, result.answered + len(args.modes))))
