import random

import pytest
import socketio

from flask_dashboard_ws.rooms import DashboardManager, user_id_of, user_room


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


# --- RoomIndexMixin: the same bookkeeping as python-socketio's manager, without the scan ---------------------

NS = "/dashboard"


def managers():
    stock, ours = socketio.Manager(), DashboardManager()
    for manager in (stock, ours):
        manager.set_server(socketio.Server())
    return stock, ours


def state(manager):
    rooms = {ns: {room: dict(members) for room, members in by_room.items()} for ns, by_room in manager.rooms.items()}
    return rooms, set(manager.callbacks), dict(getattr(manager, "pending_connect", {})), dict(manager.pending_disconnect)


def test_random_operations_leave_the_same_state_as_the_stock_manager():
    rng = random.Random(1234)
    stock, ours = managers()
    sids: list[str] = []
    for step in range(3000):
        op = rng.choice(["connect", "connect", "enter", "enter", "leave", "disconnect", "pre_disconnect", "callback"])
        if op == "connect" or not sids:
            eio_sid = f"eio{step}"
            results = [m.connect(eio_sid, NS) for m in (stock, ours)]
            # both managers make their own random sid: give ours the stock one's, so the states compare
            ours.basic_disconnect(results[1], NS)
            ours.basic_enter_room(results[0], NS, None, eio_sid=eio_sid)
            ours.basic_enter_room(results[0], NS, results[0], eio_sid=eio_sid)
            sids.append(results[0])
            continue
        sid = rng.choice(sids)
        if op == "enter" and stock.is_connected(sid, NS):
            room = f"user:{rng.randrange(20)}"
            for m in (stock, ours):
                m.enter_room(sid, NS, room)
        elif op == "leave":
            room = rng.choice([f"user:{rng.randrange(20)}", sid, None])
            for m in (stock, ours):
                m.leave_room(sid, NS, room)
        elif op == "pre_disconnect" and stock.is_connected(sid, NS):
            for m in (stock, ours):
                m.pre_disconnect(sid, NS)
        elif op == "callback" and stock.is_connected(sid, NS):
            for m in (stock, ours):
                m._generate_ack_id(sid, print)
        elif op == "disconnect":
            for m in (stock, ours):
                m.disconnect(sid, NS)
            sids.remove(sid)
        assert state(ours) == state(stock), f"step {step}: {op}"
    index: dict = {}
    for ns, by_room in ours.rooms.items():
        for room, members in by_room.items():
            for sid in members:
                index.setdefault((ns, sid), set()).add(room)
    assert ours._rooms_of == index  # exactly the rooms each socket is in, nothing left behind


class CountingRooms(dict):
    """The namespace's room dict, counting the calls that walk every room."""

    walks = 0

    def copy(self):
        CountingRooms.walks += 1
        return super().copy()

    def items(self):
        CountingRooms.walks += 1
        return super().items()


def test_a_disconnect_does_not_walk_every_room():
    _, ours = managers()
    sids = [ours.connect(f"eio{i}", NS) for i in range(2000)]
    for i, sid in enumerate(sids):
        ours.enter_room(sid, NS, f"user:{i}")
    ours.rooms[NS] = CountingRooms(ours.rooms[NS])
    CountingRooms.walks = 0
    for sid in sids[:1000]:
        ours.pre_disconnect(sid, NS)
        ours.disconnect(sid, NS)
    assert CountingRooms.walks == 0
    assert len(ours.rooms[NS]) == 1 + 2 * 1000  # the sid index, and each remaining socket's own and user room
    assert not ours.is_connected(sids[0], NS) and ours.is_connected(sids[-1], NS)
