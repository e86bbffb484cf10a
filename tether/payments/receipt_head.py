"""A receipt in the usual form, read without a tree of the order it echoes.

A receipt is the whole order sent back with ``<mmel>`` first; booking reads four texts of it,
and building an ElementTree of every line was most of what reading one cost. ``read`` matches
the start of the document against the form ``oppdrag.build_receipt_xml`` gives (declaration,
root, ``<mmel>`` of text-only elements, then the head's elements up to ``nokkelAvstemming``) and
takes the texts from the match; expat (the parser ElementTree uses) still reads the whole
document, without building anything, so what is not well-formed XML is not read here.

Within that form the texts are those ``oppdrag``'s tree finds: each the first child of its name,
text without markup, references or carriage returns (read as written). Anything else (other
whitespace, comments, prefixes, entities, another encoding) is ``None``: the tree reads it.
"""

from __future__ import annotations

import re
from pyexpat import ExpatError, ParserCreate

from tether.payments.models import Receipt

_NAME = rb"[A-Za-z_][\w.-]*"  # an element name without a prefix
_TEXT = rb"[^<&\r]*"


def _others(group: str, name: bytes) -> bytes:
    """Text-only elements not named ``name``: the siblings before the first of that name."""
    return rb"(?:<(?!%s>)(?P<%s>%s)>%s</(?P=%s)>)*" % (
        name,
        group.encode(),
        _NAME,
        _TEXT,
        group.encode(),
    )


_USUAL = re.compile(
    rb'(?:<\?xml version="1\.0"(?: encoding="UTF-8")?(?: standalone="(?:yes|no)")?\?>)?'
    rb"<(?:%s:)?oppdrag(?:\s[^<>]*)?>"
    % _NAME
    + rb"<mmel>(?P<mmel>(?:<(?P<m>%s)>%s</(?P=m)>)*)</mmel>" % (_NAME, _TEXT)
    + rb"<oppdrag-110>%s<fagsystemId>(?P<fagsystem_id>[^<&\r]+)</fagsystemId>"
    % _others("h", rb"fagsystemId")
    + rb"%s<avstemming-115>" % _others("i", rb"avstemming-115")
    + rb"%s<nokkelAvstemming>(?P<nokkel>[^<&\r]+)</nokkelAvstemming>"
    % _others("a", rb"nokkelAvstemming")
)
_ELEMENT = re.compile(rb"<(%s)>(%s)</\1>" % (_NAME, _TEXT))


def read(data: bytes) -> Receipt | None:
    """The receipt, when ``data`` is well-formed and in the usual form with an
    ``alvorlighetsgrad``; else None (the tree reads it, or says why it cannot)."""
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        return None
    usual = _USUAL.match(data)
    if usual is None or not _well_formed(data):
        return None
    mmel: dict[bytes, str | None] = {}
    for name, text in _ELEMENT.findall(usual["mmel"]):
        mmel.setdefault(name, text.decode() or None)  # no text: None, as ElementTree's
    alvorlighetsgrad = mmel.get(b"alvorlighetsgrad")
    if alvorlighetsgrad is None:
        return None
    return Receipt(
        alvorlighetsgrad=alvorlighetsgrad.strip(),
        kode_melding=mmel.get(b"kodeMelding"),
        beskr_melding=mmel.get(b"beskrMelding"),
        fagsystem_id=usual["fagsystem_id"].decode(),
        nokkel_avstemming=usual["nokkel"].decode(),
    )


def _well_formed(data: bytes) -> bool:
    """What ``ET.fromstring`` would parse: the same expat, namespaces processed as it does."""
    parser = ParserCreate(namespace_separator="}")
    try:
        parser.Parse(data, True)
    except ExpatError:
        return False
    return True
