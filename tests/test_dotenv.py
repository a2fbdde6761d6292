"""The env file reads as python-dotenv reads it, whichever path the reader takes.

Each file is written to disk and read twice: by `config.read_environment` (which takes a
fast path for plain files) and by python-dotenv's own `dotenv_values(path)`, with its
defaults (interpolation on). The two must agree on every SCHEDULER_* name.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from dotenv import dotenv_values
from hypothesis import example, given, note, settings
from hypothesis import strategies as st

from scheduler.config import loader as config

J = "SCHEDULER_JOB_A_"

# (id, file bytes). Every one is an edge of the dotenv grammar; values are SCHEDULER_*
# names so that read_environment keeps them, plus a few plain names used to interpolate.
CASES: list[tuple[str, bytes]] = [
    ("plain", b"SCHEDULER_NAMESPACE=ns\n"),
    ("no-final-newline", b"SCHEDULER_NAMESPACE=ns"),
    ("empty-file", b""),
    ("only-comments", b"# one\n  # two\n\t#three\n"),
    ("export", b"export SCHEDULER_NAMESPACE=ns\n"),
    ("export-tab", b"export\tSCHEDULER_NAMESPACE=ns\n"),
    ("export-as-key", b"export=1\nSCHEDULER_NAMESPACE=export\n"),
    ("double-quoted", b'SCHEDULER_NAMESPACE="two words"\n'),
    ("single-quoted", b"SCHEDULER_NAMESPACE='two words'\n"),
    ("double-escapes", b'SCHEDULER_NAMESPACE="a\\nb\\tc\\"d\\\\e"\n'),
    ("single-escapes", b"SCHEDULER_NAMESPACE='a\\nb\\'c\\\\d'\n"),
    ("hash-in-bare", b"SCHEDULER_NAMESPACE=abc#def\n"),
    ("hash-after-space", b"SCHEDULER_NAMESPACE=abc #def\n"),
    ("hash-after-tab", b"SCHEDULER_NAMESPACE=abc\t#def\n"),
    ("hash-in-double", b'SCHEDULER_NAMESPACE="a # b"\n'),
    ("hash-in-single", b"SCHEDULER_NAMESPACE='a # b'\n"),
    ("comment-after-quote", b'SCHEDULER_NAMESPACE="a"# b\nSCHEDULER_TIMEZONE=\'UTC\'  # c\n'),
    ("junk-after-quote", b'SCHEDULER_NAMESPACE="a" b\nSCHEDULER_TIMEZONE=UTC\n'),
    ("empty-bare", b"SCHEDULER_NAMESPACE=\n"),
    ("empty-double", b'SCHEDULER_NAMESPACE=""\n'),
    ("empty-single", b"SCHEDULER_NAMESPACE=''\n"),
    ("empty-then-comment", b"SCHEDULER_NAMESPACE= # nothing\n"),
    ("equals-then-hash", b"SCHEDULER_NAMESPACE=#x\n"),
    ("key-without-equals", b"SCHEDULER_NAMESPACE\nSCHEDULER_TIMEZONE=UTC\n"),
    ("space-before-equals", b"SCHEDULER_NAMESPACE = ns\n"),
    ("space-after-equals", b"SCHEDULER_NAMESPACE=   ns\n"),
    ("trailing-spaces", b"SCHEDULER_NAMESPACE=ns   \nSCHEDULER_TIMEZONE='UTC'   \n"),
    ("inner-spaces", b"SCHEDULER_NAMESPACE=a b c\n"),
    ("leading-indent", b"   SCHEDULER_NAMESPACE=ns\n\tSCHEDULER_TIMEZONE=UTC\n"),
    ("crlf", b"SCHEDULER_NAMESPACE=ns\r\nSCHEDULER_TIMEZONE='UTC'\r\n"),
    ("lone-cr", b"SCHEDULER_NAMESPACE=ns\rSCHEDULER_TIMEZONE=UTC\r"),
    ("bom", b"\xef\xbb\xbfSCHEDULER_NAMESPACE=ns\n"),
    ("bom-crlf-export", b"\xef\xbb\xbfexport SCHEDULER_NAMESPACE=ns\r\n"),
    ("multiline-double", b'SCHEDULER_JOB_A_BODY="line one\nline two"\nSCHEDULER_NAMESPACE=ns\n'),
    ("multiline-single", b"SCHEDULER_JOB_A_BODY='line one\nline two'\n"),
    ("multiline-crlf", b'SCHEDULER_JOB_A_BODY="one\r\ntwo"\r\n'),
    ("unterminated-double", b'SCHEDULER_NAMESPACE="open\nSCHEDULER_TIMEZONE=UTC\n'),
    ("json-in-single", b"SCHEDULER_JOB_A_HEADERS='{\"X-Team\": \"ops\"}'\n"),
    ("json-in-double", b'SCHEDULER_JOB_A_HEADERS="{\\"X-Team\\": \\"ops\\"}"\n'),
    ("interp-bare", b"NS=from-file\nSCHEDULER_NAMESPACE=${NS}\n"),
    ("interp-double", b'NS=from-file\nSCHEDULER_NAMESPACE="${NS}-x"\n'),
    ("interp-single", b"NS=from-file\nSCHEDULER_NAMESPACE='${NS}'\n"),
    ("interp-single-alone", b"SCHEDULER_NAMESPACE='${SCHEDULER_DOTENV_TEST_UNSET}'\n"),
    ("interp-default", b"SCHEDULER_NAMESPACE=${SCHEDULER_DOTENV_TEST_UNSET:-fallback}\n"),
    ("interp-default-single", b"SCHEDULER_NAMESPACE='${SCHEDULER_DOTENV_TEST_UNSET:-fb}'\n"),
    ("interp-later-key", b"SCHEDULER_NAMESPACE=${LATER}\nLATER=x\n"),
    ("interp-unset", b"SCHEDULER_NAMESPACE=a${SCHEDULER_DOTENV_TEST_UNSET}b\n"),
    ("dollar-not-interp", b"SCHEDULER_NAMESPACE=$NS\nSCHEDULER_TIMEZONE='$5'\n"),
    ("interp-in-comment-only", b"# uses ${NS}\nSCHEDULER_NAMESPACE='plain'\n"),
    ("escaped-dollar", b'SCHEDULER_NAMESPACE="\\${NS}"\nNS=v\n'),
    ("unicode-bare", "SCHEDULER_NAMESPACE=h\u00e9llo\n".encode()),
    ("unicode-quoted", "SCHEDULER_NAMESPACE='\u65e5\u672c'\nSCHEDULER_TIMEZONE=\"\u00fc\"\n".encode()),
    ("unicode-space", "SCHEDULER_NAMESPACE=a\u00a0# b\n".encode()),
    ("unicode-key", "SCHEDULER_N\u00c9=1\nSCHEDULER_NAMESPACE=ns\n".encode()),
    ("duplicate-key", b"SCHEDULER_NAMESPACE=one\nSCHEDULER_NAMESPACE=two\n"),
    ("quoted-key", b"'SCHEDULER_NAMESPACE'=ns\n"),
    ("blank-lines", b"\n\n  \nSCHEDULER_NAMESPACE=ns\n\n"),
    ("equals-in-value", b"SCHEDULER_JOB_A_URL=/x?a=b&c=d\n"),
    ("backslash-bare", b"SCHEDULER_NAMESPACE=a\\b\n"),
    ("quote-in-bare", b"SCHEDULER_NAMESPACE=a'b\n"),
    ("double-in-single", b"SCHEDULER_NAMESPACE='a\"b'\n"),
    ("form-feed", b"\x0cSCHEDULER_NAMESPACE=ns\x0b\n"),
    ("job-file", (
        b"# jobs\n"
        b"export SCHEDULER_JOB_A_SCHEDULE='every 10s'\n"
        b"SCHEDULER_JOB_A_URL=/a  # the path\n"
        b'SCHEDULER_JOB_A_METHOD="GET"\r\n'
    )),
]


def _ours(path: Path) -> dict[str, str]:
    return config.read_environment(str(path), {})


def _theirs(path: Path) -> dict[str, str]:
    read = dotenv_values(path, encoding="utf-8")
    return {k: "" if v is None else v for k, v in read.items() if k.startswith(config.PREFIX)}


def test_there_are_at_least_forty_edge_cases() -> None:
    assert len(CASES) >= 40
    assert len({name for name, _ in CASES}) == len(CASES)


@pytest.mark.parametrize("data", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_the_env_file_reads_as_python_dotenv_reads_it(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "case.env"
    path.write_bytes(data)
    assert _ours(path) == _theirs(path)


def test_a_single_quoted_reference_reads_the_same_alone_and_beside_other_references(tmp_path: Path) -> None:
    # One line, two files: the answer must not depend on the rest of the file.
    alone, mixed = tmp_path / "alone.env", tmp_path / "mixed.env"
    alone.write_text("NS=v\nSCHEDULER_NAMESPACE='${NS}'\n")
    mixed.write_text("NS=v\nSCHEDULER_NAMESPACE='${NS}'\nSCHEDULER_TIMEZONE=${TZ_FROM_FILE:-UTC}\n")
    assert _ours(alone)["SCHEDULER_NAMESPACE"] == _ours(mixed)["SCHEDULER_NAMESPACE"] == "v"


_PIECE = st.sampled_from([
    "a", "b c", "#", " #", "\t# n", "'", '"', "\\", "\\n", "\\'", '\\"', "$", "${NS}", "${U:-d}",
    "${", "}", "=", "\u00e9", "\u00a0", "\r", "\n", "\r\n", " ", "\t", "export ", "\ufeff",
])
_VALUE = st.lists(_PIECE, max_size=5).map("".join)
_LINE = st.one_of(
    st.builds(
        lambda lead, export, key, value, tail: f"{lead}{export}{key}={value}{tail}",
        st.sampled_from(["", " ", "\t"]),
        st.sampled_from(["", "export ", "export\t"]),
        st.sampled_from(["SCHEDULER_A", "SCHEDULER_B", "NS", "U", "SCHEDULER_A B"]),
        st.one_of(_VALUE, _VALUE.map(lambda t: f'"{t}"'), _VALUE.map(lambda t: f"'{t}'")),
        st.sampled_from(["", " ", "  # c", "#c", "\r", " x"]),
    ),
    st.sampled_from(["", "# ${NS}", "SCHEDULER_A", "=x", "  "]),
)


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(_LINE, max_size=6), newline=st.sampled_from(["\n", "\r\n"]), bom=st.booleans())
@example(lines=["SCHEDULER_A='${NS}'"], newline="\n", bom=False)
def test_generated_env_files_read_as_python_dotenv_reads_them(tmp_path_factory, lines, newline, bom) -> None:
    text = ("\ufeff" if bom else "") + newline.join(lines) + newline
    note(repr(text))
    path = tmp_path_factory.mktemp("gen") / "gen.env"
    path.write_bytes(text.encode("utf-8"))
    assert _ours(path) == _theirs(path)
