"""The page's inline CSS: one column, readable on a phone; wide tables scroll sideways."""

STYLE = """
body{font:15px/1.4 system-ui,sans-serif;margin:0 auto;padding:1em;max-width:60em;color:#222;background:#fafafa}
h1{font-size:1.3em;margin:0 0 .3em}
.meta{color:#555;margin-bottom:.6em}
#summary{display:flex;flex-wrap:wrap;gap:.4em;margin:0 0 .6em}
#summary a{padding:.25em .6em;border:1px solid #ccc;border-radius:4px;color:#222;text-decoration:none;background:#fff}
#summary a.on{border-color:#222;font-weight:600}
#summary a.bad{background:#f9d6d5}#summary a.warn{background:#fbeec8}
#filters{display:flex;flex-wrap:wrap;gap:.4em;align-items:center;margin:0 0 .8em}
#filters input{flex:1 1 12em}
input,select{font:inherit;padding:.3em .5em;border:1px solid #888;border-radius:4px;min-width:0}
#shown{color:#555;font-size:.9em}
.job{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.8em;margin:0 0 1em}
.job h2{font-size:1.1em;margin:0 0 .4em;word-break:break-all}
[hidden]{display:none!important}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.15em .8em;margin:.3em 0}
dt{color:#666}dd{margin:0;word-break:break-word}
.tag{display:inline-block;padding:0 .45em;border-radius:3px;font-size:.85em;background:#eee}
.ok{background:#d9f2dd}.failed,.failing,.overdue,.held{background:#f9d6d5}
.paused,.disabled,.skipped,.dropped{background:#fbeec8}
.done,.expired{background:#e2e6f3}.running,.pending{background:#dcecfb}
pre{white-space:pre-wrap;word-break:break-word;background:#f4f4f4;padding:.4em;margin:.3em 0;font-size:.85em}
button{font:inherit;padding:.35em .9em;margin:.3em .4em 0 0;border:1px solid #888;border-radius:4px;background:#fff}
td button{padding:.1em .5em;margin:0}
.acts{display:flex;flex-wrap:wrap;align-items:center;gap:0 .2em}
.acts input{flex:1 1 10em;margin-top:.3em}
table{border-collapse:collapse;font-size:.85em;width:100%;display:block;overflow-x:auto}
td,th{border-bottom:1px solid #eee;padding:.2em .4em;text-align:left;white-space:nowrap;vertical-align:top}
td.err,td.why{white-space:normal;min-width:14em;word-break:break-word}
@media (max-width:40em){
 table.ledger,table.ledger tbody{display:block}table.ledger tr:first-child{display:none}
 table.ledger tr{display:block;border-bottom:1px solid #ddd;padding:.3em 0}
 table.ledger td{display:inline-block;border:0;padding:.1em .4em .1em 0;min-width:0}
 table.ledger td[data-k]::before{content:attr(data-k) ": ";color:#666}
 table.ledger td.err,table.ledger td.why{display:block}table.ledger td:empty{display:none}
}
#msg{min-height:1.4em;color:#a00}
"""
