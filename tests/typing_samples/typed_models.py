"""Models and record access as a user's type checker sees them.

Not run: ``tests/test_typing.py`` type-checks this file with ``mypy --strict``
and compares what each ``reveal_type(...)`` shows with the type written in
its comment (the sample's own classes written without their module), and
each ``# error: [code]`` comment with the error mypy reports on that line.
Every other line must check cleanly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from repocket import ActiveRecord, attributes

if TYPE_CHECKING:
    from typing_extensions import reveal_type


class Team(ActiveRecord):
    name = attributes.Unicode()


class User(ActiveRecord):
    id = attributes.AutoUUID()
    name = attributes.Unicode()
    nickname = attributes.Unicode(null=True)
    age = attributes.Integer(null=True)
    visits = attributes.Integer(default=0)
    height = attributes.Float()
    balance = attributes.Decimal(null=True)
    joined = attributes.DateTime(auto_now=True)
    left = attributes.DateTime(null=True)
    token = attributes.UUID()
    email = attributes.Bytes()
    avatar = attributes.ByteStream()
    metadata = attributes.JSON(default=dict)
    team = attributes.Pointer(Team)
    mentor = attributes.Pointer("User", null=True)


def read_from_the_class() -> None:
    reveal_type(User.name)  # repocket.attributes.Unicode[str]
    reveal_type(User.age)  # repocket.attributes.Integer[int | None]
    reveal_type(User.team)  # repocket.attributes.Pointer[Team | None]
    reveal_type(User.age.null)  # bool


def read_from_a_record(user: User, team: Team) -> None:
    reveal_type(user.id)  # uuid.UUID
    reveal_type(user.name)  # str
    reveal_type(user.nickname)  # str | None
    reveal_type(user.age)  # int | None
    reveal_type(user.visits)  # int
    reveal_type(user.height)  # float
    reveal_type(user.balance)  # decimal.Decimal | None
    reveal_type(user.joined)  # datetime.datetime
    reveal_type(user.left)  # datetime.datetime | None
    reveal_type(user.token)  # uuid.UUID
    reveal_type(user.email)  # bytes
    reveal_type(user.avatar)  # bytes
    reveal_type(user.metadata)  # Any
    reveal_type(user.team)  # Team | None
    reveal_type(user.mentor)  # Any
    reveal_type(team.id)  # Any
    reveal_type(team.name)  # str


def assign(user: User, team: Team) -> None:
    user.name = "Harry"
    user.nickname = None
    user.age = 17
    user.age = None
    user.team = team
    user.team = None
    user.mentor = user
    user.age = "seventeen"  # error: [assignment]
    user.name = None  # error: [assignment]
    user.visits = None  # error: [assignment]
    user.email = "harry@hogwarts.uk"  # error: [assignment]
    user.team = user  # error: [assignment]


def describe(field: attributes.Attribute) -> str:
    # a bare Attribute means a field of any type
    return f"{field.name}: {field.get_base_type().__name__}"


def null_from_a_variable(nullable: bool) -> None:
    class Pet(ActiveRecord):
        name = attributes.Unicode(null=nullable)

    reveal_type(Pet().name)  # str | None
