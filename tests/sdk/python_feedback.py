"""User feedback from a Python service, the two ways one can send it.

The official sentry-sdk has no feedback call of its own (PROTOCOL.md §14.1), so the first
report travels as the `user_report` envelope item the Java and .NET SDKs send, through the
SDK's own transport (its auth header, its compression); the second goes to the user-feedback
API with the DSN, as a server-side app posts what a user typed on its error page.
Prints the two error event ids, one per line.
"""

import json
import os
import urllib.request

import sentry_sdk
from sentry_sdk.envelope import Envelope, Item, PayloadRef

DSN = os.environ["FAULTLINE_DSN"]
sentry_sdk.init(dsn=DSN, release="checkout@1.4.2", environment="production")


def apply_discount(total, percent):
    return total / percent


def charge(card):
    return {"visa": 1}[card]


def capture(function, *args):
    try:
        function(*args)
    except Exception as error:  # noqa: BLE001 - the point is to report it
        return sentry_sdk.capture_exception(error)


discount_error = capture(apply_discount, 100, 0)
charge_error = capture(charge, "amex")
sentry_sdk.flush(timeout=10)

report = Envelope(headers={"event_id": discount_error})
report.add_item(
    Item(
        payload=PayloadRef(
            json={
                "event_id": discount_error,
                "name": "Jane Doe",
                "email": "jane@example.com",
                "comments": "The discount code made the total vanish.",
            }
        ),
        type="user_report",
    )
)
sentry_sdk.get_client().transport.capture_envelope(report)
sentry_sdk.flush(timeout=10)

scheme_host, project = DSN.rsplit("/", 1)
base = scheme_host.split("://")[0] + "://" + scheme_host.split("@", 1)[1]
request = urllib.request.Request(
    f"{base}/api/0/projects/faultline/{project}/user-feedback/",
    data=json.dumps(
        {
            "event_id": charge_error,
            "name": "Omar",
            "email": "omar@example.com",
            "comments": "My Amex card was refused twice.",
        }
    ).encode(),
    headers={"Authorization": f"DSN {DSN}", "Content-Type": "application/json"},
    method="POST",
)
with urllib.request.urlopen(request, timeout=10) as answer:
    assert answer.status == 200, answer.status

print(discount_error)
print(charge_error)
