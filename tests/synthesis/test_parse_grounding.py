"""Parsing teacher replies and the deterministic grounding gates."""

from __future__ import annotations

from pipeline.synthesis import grounding
from pipeline.synthesis.dedup import NearDuplicateFilter
from pipeline.synthesis.parse import parse_reply


def test_parse_json_fenced_and_prefixed():
    good = '{"evidence": ["A b c."], "question": "Q?", "answer": "A"}'
    assert parse_reply(good).answer == "A"
    assert parse_reply(f"Sure!\n```json\n{good}\n```").question == "Q?"
    assert parse_reply('{"question": "Q?", "answer": "A", "evidence": "one quote"}').evidence == ["one quote"]


def test_lenient_parse_of_unescaped_quotes():
    text = '{"question": "What does the "License" grant?", "answer": "A "perpetual" license.", "evidence": ["x"]}'
    qa = parse_reply(text)
    assert qa.question == 'What does the "License" grant?' and qa.answer == 'A "perpetual" license.'


def test_unparseable_and_incomplete_replies():
    assert parse_reply("I cannot help with that.") is None
    assert parse_reply('{"question": "only a question?"}') is None


def test_locate_normalises_whitespace_quotes_and_case():
    source = "Licensor grants You a  perpetual,\n   worldwide license \u201cas is\u201d."
    span = grounding.locate('licensor grants you a perpetual, worldwide license "as is".', source)
    assert span is not None and source[span[0] : span[1]].startswith("Licensor")
    assert grounding.locate("a sentence that is not there at all", source) is None


def test_locate_with_ellipsis():
    source = "First part of the sentence here, then many words, and the final part at the end."
    span = grounding.locate("First part of the sentence ... the final part at the end", source)
    assert span == (0, len(source) - 1)


def test_support_and_numbers():
    ev = "The pass key is 31337 and it opens the blue door."
    assert grounding.support("The key is 31337.", ev) == 1.0
    assert grounding.support("The key is 99999.", ev) == 0.0
    assert grounding.support("It opens the red gate.", ev) < 0.5


def test_refusals_are_detected():
    assert grounding.is_refusal("I'm sorry, but the text does not say.")
    assert grounding.is_refusal("This is not mentioned in the document.")
    assert not grounding.is_refusal("The answer is 42.")


def test_token_f1():
    assert grounding.token_f1("Paris", "paris") == 1.0
    assert 0 < grounding.token_f1("the capital is Paris", "Paris") < 1


def test_near_duplicates():
    f = NearDuplicateFilter(threshold=0.6)
    assert not f.seen("What does the Apache License grant to each contributor?")
    assert f.seen("What does the Apache License grant to each contributor ?")
    assert not f.seen("How do Python classes define private variables?")


def test_labelled_plain_text_fallback():
    qa = parse_reply("Question: What does the library lend?\nAnswer: Up to five books.\n\nSomething else")
    assert qa.question == "What does the library lend?" and qa.answer == "Up to five books."


def test_near_duplicates_by_embedding_with_packaged_minilm():
    from pipeline.synthesis.factory import build_dedup_embedder

    f = NearDuplicateFilter(threshold=0.7, embedder=build_dedup_embedder("minilm"), cosine=0.93)
    assert not f.seen("What does the Apache License grant to each contributor?")
    assert f.match("What does the Apache License give to every contributor?").startswith("embedding cosine")
    assert not f.seen("What does the Apache License require of contributors?")
    assert not f.seen("How do Python classes define private variables?")


def test_json_escapes_in_almost_json_are_decoded():
    qa = parse_reply(
        '{"question": "Why "now"?", "answer": "It says \\"soon\\" and\\nlater", "evidence": ["a \\"b\\" c"]}'
    )
    assert (
        qa.answer == 'It says "soon" and\nlater'
        and qa.evidence == ['a "b" c']
        and qa.question == 'Why "now"?'
    )


def test_soft_refusals_and_ellipsis_quotes():
    assert grounding.is_refusal("The text does not specify which port the server uses.")
    assert grounding.is_refusal("The version is not mentioned in the document.")
    assert not grounding.is_refusal("If the port is not specified, port 80 is used.")
    source = (
        "The licensor grants a perpetual license. Unrelated words follow here. The end of the grant is near."
    )
    assert grounding.locate("The licensor grants ... the grant is near", source) is not None
    assert grounding.locate("The licensor grants ... the budget was approved", source) is None
