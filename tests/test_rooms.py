import pytest

from flask_dashboard_ws.rooms import user_id_of, user_room


@pytest.mark.parametrize(("user_id", "room"), [("alice", "user:alice"), ("42", "user:42"), (42, "user:42"), (0, "user:0"),
                                               ("a b", "user:a b")])
def test_user_room(user_id, room):
    assert user_room(user_id) == room


def test_string_and_integer_ids_share_a_room():
    assert user_room(7) == user_room("7")
    assert user_id_of(7) == "7"


@pytest.mark.parametrize("user_id", ["", " ", "\t\n", None, True, False, 1.0, b"alice", ["alice"], {"id": 1}])
def test_user_room_refuses_anything_but_a_non_empty_string_or_an_integer(user_id):
    with pytest.raises(ValueError):
        user_room(user_id)
