"""The new-user scenario of the ingest issue, run with the official sentry-sdk.

Raises the same exception from the same code path twice with different values, another
exception elsewhere, a chained exception, and the same message twice with different numbers.
Prints each event id the SDK reports, one per line, then flushes.
"""

import os

import sentry_sdk

sentry_sdk.init(
    dsn=os.environ["FAULTLINE_DSN"],
    release="checkout@1.4.2",
    environment="staging",
    server_name="checkout-host-1",
    include_local_variables=True,
)
sentry_sdk.set_tag("component", "payments")
sentry_sdk.set_user({"id": "user-42", "email": "buyer@example.com"})
sentry_sdk.set_context("order", {"id": 1001, "items": 3})


def parse_quantity(raw):
    secret_token = "python-local-secret"  # scrubbed: its name contains "token"
    return int(raw)


def add_to_cart(raw):
    sentry_sdk.add_breadcrumb(category="cart", message=f"adding {raw}", level="info")
    try:
        return parse_quantity(raw)
    except ValueError as error:
        return sentry_sdk.capture_exception(error)


def lookup_price():
    prices = {"apple": 1}
    return prices["pear"]


def charge_card():
    try:
        return {}["card"]
    except KeyError as error:
        raise RuntimeError("charge failed") from error


def capture(function):
    try:
        function()
    except Exception as error:  # noqa: BLE001 - the point is to report it
        return sentry_sdk.capture_exception(error)


ids = [
    add_to_cart("abc"),
    add_to_cart("x-17"),
    capture(lookup_price),
    capture(charge_card),
    sentry_sdk.capture_message("Payment declined for order 1001"),
    sentry_sdk.capture_message("Payment declined for order 2002"),
]
sentry_sdk.flush(timeout=10)
for event_id in ids:
    print(event_id)
