"""The table of one run of bench/latency.py, from its result dict."""

from __future__ import annotations

from bench import daemon_logs, output


def report(r: dict) -> None:
    cfg, red, lead = r["config"], r["redis"], r["leader"]
    lat, fos, spr = r["lateness_ms"], r["first_of_slot_lateness_ms"], r["slot_spread_ms"]
    t = r["targets"]

    def tgt(key: str, text: str) -> str:
        return f"{text}: {output.verdict(t[key]['pass'])}" if key in t else ""

    rows = [
        ("jobs x slots (expected fires)", f"{cfg['jobs']} x {r['expected_fires'] // max(1, cfg['jobs'])} = {r['expected_fires']}", ""),
        ("delivered", f"{r['delivered']} ({output.fmt(r['delivered_pct'], '%', 2)})", tgt("delivered_pct", "100%")),
        ("duplicates (same Idempotency-Key again)", r["duplicates"], tgt("duplicates", "0")),
        ("requests with attempt > 1", r["attempts_above_1"], ""),
        ("lateness p50 / p90", f"{output.fmt(lat['p50'], ' ms', 2)} / {output.fmt(lat['p90'], ' ms', 2)}", ""),
        ("lateness p99", output.fmt(lat["p99"], " ms", 2), tgt("p99_ms", f"<= {t.get('p99_ms', {}).get('target')} ms")),
        ("lateness min / max", f"{output.fmt(lat['min'], ' ms', 2)} / {output.fmt(lat['max'], ' ms', 2)}", ""),
        ("first fire of each slot: p50 / max", f"{output.fmt(fos['p50'], ' ms', 2)} / {output.fmt(fos['max'], ' ms', 2)}", ""),
        ("spread first->last job of a slot p50 / max", f"{output.fmt(spr['p50'], ' ms', 2)} / {output.fmt(spr['max'], ' ms', 2)}", ""),
        ("lease acquisitions during the window", r["lease_acquisitions_in_window"], "0 = the first replica led throughout"),
        ("leader CPU (% of one core)", output.fmt(lead["cpu_percent_of_core"], " %", 1), tgt("leader_cpu_pct", "<= 25%")),
        ("leader RSS / peak RSS", f"{output.mb(lead['rss_kb'])} / {output.mb(lead['peak_rss_kb'])}", ""),
    ]
    for i, sb in enumerate(r["standbys"], 2):
        rows.append((f"standby {i} CPU / RSS", f"{output.fmt(sb['cpu_percent_of_core'], ' %', 2)} / {output.mb(sb['rss_kb'])}", ""))
    by = ", ".join(f"{k} {v}" for k, v in sorted(red["leader_commands_by_name"].items(), key=lambda kv: -kv[1]))
    rows += [
        ("Redis cmds/fire, leader (MONITOR)", output.fmt(red["leader_commands_per_fire"], "", 3), tgt("cmds_per_fire", "<= 2")),
        ("Redis cmds/fire, all replicas (MONITOR)", output.fmt(red["all_commands_per_fire"], "", 3), ""),
        ("  sample", f"{red['monitor_sample_s']} s, {red['fires_in_sample']} fires; leader: "
                     f"{by or 'none' if red['sample_lease_holder_pid'] else 'lease changed hands during the sample'}", ""),
        ("  calls inside scripts per fire", output.fmt(red["script_inner_calls_per_fire"], "", 2), ""),
        ("EVALSHA/EVAL per fire, window (commandstats)", output.fmt(red["script_calls_per_fire"], "", 3), ""),
        ("receiver: max open requests / connections", f"{r['receiver']['max_open_requests']} / {r['receiver']['connections']}", ""),
        ("replicas alive at end; exit codes", f"{r['alive_at_end']}; {r['exit_codes']} (SIGTERM to exit: {r['shutdown_s']} s)",
         "-9: killed 40 s after SIGTERM"),
        ("daemon warnings/errors logged", daemon_logs.summarize_problems(r["log_problems"]), ""),
    ]
    title = (f"latency [{r['name']}]: {cfg['jobs']} jobs '{cfg['schedule']}' from {cfg.get('jobs_from', 'env')}, {cfg['duration_s']} s, {cfg['replicas']} replicas, "
             f"MAX_CONCURRENCY={cfg['max_concurrency']}, LOG_LEVEL={cfg['log_level']}, {cfg['receiver']} receiver, TTL {cfg['lease_ttl']}/renew {cfg['lease_renew']}")
    output.print_table(title, rows, ("figure", "value", "target"))
    if "profile" in r:
        p = r["profile"]
        output.print_table(f"leader profile (py-spy, {p['total_samples']} non-idle samples): self time",
                      [(x["function"], f"{x['percent']} %") for x in p["self"][:12]], ("function", "% samples"))
        output.print_table("leader profile: inclusive",
                      [(x["function"], f"{x['percent']} %") for x in p["inclusive"][:20]], ("function", "% samples"))
