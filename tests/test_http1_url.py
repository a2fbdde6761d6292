"""The request target of a URL: the plain-URL fast path of http1_url.target gives exactly
what the full parse (urlsplit, IDNA, quoting) gives, for any URL, or the same error."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from scheduler.http.client import url as http1_url

_full = http1_url._parsed.__wrapped__  # the reference: the full parse, uncached

_CHARS = "aZ09-._~:/?#[]@!$&'()*+,;=% \t\\é\x01"
# Paths and queries of safe characters with one or two others, so that both the fast path
# and its edges (a lone %, a space, a fragment) are reached often.
_SAFE = "aZ09-._~:/@!$&'()*+,;=?"
_part = st.one_of(
    st.text(alphabet=_SAFE, max_size=12),
    st.builds(lambda a, c, b: a + c + b, st.text(alphabet=_SAFE, max_size=6), st.sampled_from("%#[] \\té\x01"),
              st.text(alphabet=_SAFE + "%", max_size=6)),
    st.text(alphabet=_CHARS, max_size=12),
)
_url = st.builds(
    lambda scheme, auth, host, port, path, query: f"{scheme}://{auth}{host}{port}{path}{query}",
    st.sampled_from(["http", "https", "HTTP", "ftp"]),
    st.sampled_from(["", "u:p@", "u@", "@"]),
    st.sampled_from(["example.com", "EXAMPLE.com.", "127.0.0.1", "[::1]", "bücher.de", "a..b", ""]),
    st.sampled_from(["", ":8080", ":0", ":x", ":"]),
    _part.map(lambda p: "/" + p if p else ""),
    _part.map(lambda q: "?" + q if q else ""),
)


def _outcome(fn, url: str):
    try:
        return fn(url)
    except ValueError as exc:
        return ("error", str(exc))


@settings(max_examples=3000, deadline=None)
@given(st.one_of(_url, st.text(alphabet=_CHARS + "htps", max_size=40)))
def test_the_fast_path_gives_what_the_full_parse_gives(url: str) -> None:
    assert _outcome(http1_url.target, url) == _outcome(_full, url)


def test_ten_thousand_urls_on_one_origin_parse_the_origin_once() -> None:
    http1_url._parsed.cache_clear()
    for i in range(10_000):
        assert http1_url.target(f"http://app.internal:8080/jobs/{i}?run=1").path == f"/jobs/{i}?run=1"
    assert http1_url._parsed.cache_info().misses == 1
