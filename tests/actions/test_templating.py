from voiced.actions.templating import render, render_data, topic_level, url_component


def test_render_substitutes_values_as_text_only():
    values = {"room": "$(reboot)", "text": "${room}"}
    # a value that looks like a template or a command stays literal: no second pass
    assert render("light.$room", values) == "light.$(reboot)"
    assert render("said: $text", values) == "said: ${room}"
    assert render("$unknown and $$", values) == "$unknown and $"


def test_render_data_keeps_single_references_typed():
    values = {"minutes": 5, "room": "kitchen"}
    body = {"entity_id": "light.$room", "duration": "$minutes", "list": ["${minutes}x", 3]}
    assert render_data(body, values) == {"entity_id": "light.kitchen", "duration": 5, "list": ["5x", 3]}


def test_escapes_for_urls_and_topics():
    assert (
        render("http://h/api/$room?x=1", {"room": "a/../b?c=d"}, escape=url_component)
        == "http://h/api/a%2F..%2Fb%3Fc%3Dd?x=1"
    )
    assert render("home/$room/set", {"room": "#/+"}, escape=topic_level) == "home/___/set"
