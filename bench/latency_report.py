"""The table of one run of bench/latency.py, from its result dict."""

from __future__ import annotations

import common as c


def report(r: dict) -> None:
    cfg, red, lead = r["config"], r["redis"], r["leader"]
    lat, fos, spr = r["lateness_ms"], r["first_of_slot_lateness_ms"], r["slot_spread_ms"]
    t = r["targets"]

    def tgt(key: str, text: str) -> str:
        return f"{text}: {c.verdict(t[key]['pass'])}" if key in t else ""

    rows = [
        ("jobs x slots (expected fires)", f"{cfg['jobs']} x {r['expected_fires'] // max(1, cfg['jobs'])} = {r['expected_fires']}", ""),
        ("delivered", f"{r['delivered']} ({c.fmt(r['delivered_pct'], '%', 2)})", tgt("delivered_pct", "100%")),
        ("duplicates (same Idempotency-Key again)", r["duplicates"], tgt("duplicates", "0")),
        ("requests with attempt > 1", r["attempts_above_1"], ""),
        ("lateness p50 / p90", f"{c.fmt(lat['p50'], ' ms', 2)} / {c.fmt(lat['p90'], ' ms', 2)}", ""),
        ("lateness p99", c.fmt(lat["p99"], " ms", 2), tgt("p99_ms", f"<= {t.get('p99_ms', {}).get('target')} ms")),
        ("lateness min / max", f"{c.fmt(lat['min'], ' ms', 2)} / {c.fmt(lat['max'], ' ms', 2)}", ""),
        ("first fire of each slot: p50 / max", f"{c.fmt(fos['p50'], ' ms', 2)} / {c.fmt(fos['max'], ' ms', 2)}", ""),
        ("spread first->last job of a slot p50 / max", f"{c.fmt(spr['p50'], ' ms', 2)} / {c.fmt(spr['max'], ' ms', 2)}", ""),
        ("lease acquisitions during the window", r["lease_acquisitions_in_window"], "0 = the first replica led throughout"),
        ("leader CPU (% of one core)", c.fmt(lead["cpu_percent_of_core"], " %", 1), tgt("leader_cpu_pct", "<= 25%")),
        ("leader RSS / peak RSS", f"{c.mb(lead['rss_kb'])} / {c.mb(lead['peak_rss_kb'])}", ""),
    ]
    for i, sb in enumerate(r["standbys"], 2):
        rows.append((f"standby {i} CPU / RSS", f"{c.fmt(sb['cpu_percent_of_core'], ' %', 2)} / {c.mb(sb['rss_kb'])}", ""))
    by = ", ".join(f"{k} {v}" for k, v in sorted(red["leader_commands_by_name"].items(), key=lambda kv: -kv[1]))
    rows += [
        ("Redis cmds/fire, leader (MONITOR)", c.fmt(red["leader_commands_per_fire"], "", 3), tgt("cmds_per_fire", "<= 2")),
        ("Redis cmds/fire, all replicas (MONITOR)", c.fmt(red["all_commands_per_fire"], "", 3), ""),
        ("  sample", f"{red['monitor_sample_s']} s, {red['fires_in_sample']} fires; leader: "
                     f"{by or 'none' if red['sample_lease_holder_pid'] else 'lease changed hands during the sample'}", ""),
        ("  calls inside scripts per fire", c.fmt(red["script_inner_calls_per_fire"], "", 2), ""),
        ("EVALSHA/EVAL per fire, window (commandstats)", c.fmt(red["script_calls_per_fire"], "", 3), ""),
        ("receiver: max open requests / connections", f"{r['receiver']['max_open_requests']} / {r['receiver']['connections']}", ""),
        ("replicas alive at end; exit codes", f"{r['alive_at_end']}; {r['exit_codes']} (SIGTERM to exit: {r['shutdown_s']} s)",
         "-9: killed 40 s after SIGTERM"),
        ("daemon warnings/errors logged", c.summarize_problems(r["log_problems"]), ""),
    ]
    title = (f"latency [{r['name']}]: {cfg['jobs']} jobs '{cfg['schedule']}' from {cfg.get('jobs_from', 'env')}, {cfg['duration_s']} s, {cfg['replicas']} replicas, "
             f"MAX_CONCURRENCY={cfg['max_concurrency']}, LOG_LEVEL={cfg['log_level']}, {cfg['receiver']} receiver, TTL {cfg['lease_ttl']}/renew {cfg['lease_renew']}")
    c.print_table(title, rows, ("figure", "value", "target"))
    if "profile" in r:
        p = r["profile"]
        c.print_table(f"leader profile (py-spy, {p['total_samples']} non-idle samples): self time",
                      [(x["function"], f"{x['percent']} %") for x in p["self"][:12]], ("function", "% samples"))
        c.print_table("leader profile: inclusive",
                      [(x["function"], f"{x['percent']} %") for x in p["inclusive"][:20]], ("function", "% samples"))
