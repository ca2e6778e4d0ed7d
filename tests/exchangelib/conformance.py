"""Run the Python EWS client exchangelib against a running siuctl lab.

The lab's fidelity check: a real, widely used EWS client must be able to do what the
controller does, over the same protocol. For each mode it probes the server version,
opens a mailbox by impersonation and reads Sent Items. Then it creates a message from MIME
with PR_MESSAGE_FLAGS set, finds it by Message-ID (through the field URI and through the
0x1035 extended property), fetches its MIME content and deletes it.

Configuration comes from the environment, so that no secret appears on a command line:

  SIU_LAB_CA              the lab's CA certificate (PEM); the only trust anchor used
  SIU_LAB_EWS_URL         on-premises EWS URL, for the Basic mode
  SIU_LAB_USER            service account (UPN or DOMAIN\\user) with ApplicationImpersonation
  SIU_LAB_PASSWORD        its password
  SIU_LAB_MAILBOX         on-premises mailbox to impersonate
  SIU_LAB_ONLINE_EWS_URL  Exchange Online EWS URL, for the Bearer mode
  SIU_LAB_ACCESS_TOKEN    an app-only access token with full_access_as_app, or
  SIU_LAB_TOKEN_URL, SIU_LAB_CLIENT_ID, SIU_LAB_CLIENT_SECRET
                          the lab's token endpoint and client credentials to get one
  SIU_LAB_CLOUD_MAILBOX   cloud mailbox to impersonate

A mode whose variables are missing is skipped. Exit status 0 when every mode that ran
passed, 1 otherwise; one line per check on standard output.
"""

import os
import sys
import time
import uuid

import requests.adapters
from exchangelib import (
    BASIC,
    IMPERSONATION,
    OAUTH2,
    Account,
    Configuration,
    Credentials,
    ExtendedProperty,
    Identity,
    Message,
    OAuth2Credentials,
)
from exchangelib.protocol import BaseProtocol


class LabCAAdapter(requests.adapters.HTTPAdapter):
    """Verifies the lab's certificates against the lab CA, and nothing else."""

    def cert_verify(self, conn, url, verify, cert):
        super().cert_verify(conn=conn, url=url, verify=os.environ["SIU_LAB_CA"], cert=cert)


class MessageFlags(ExtendedProperty):
    """PR_MESSAGE_FLAGS: a value without MSGFLAG_UNSENT keeps the new item from being a draft."""

    property_tag = 0x0E07
    property_type = "Integer"


class InternetMessageId(ExtendedProperty):
    """PR_INTERNET_MESSAGE_ID, the tag the controller filters on."""

    property_tag = 0x1035
    property_type = "String"


class LabOAuth2Credentials(OAuth2Credentials):
    """Client credentials whose token endpoint is the lab's, so no request leaves loopback."""

    @property
    def token_url(self):
        return os.environ["SIU_LAB_TOKEN_URL"]


def check(condition, message):
    if not condition:
        raise AssertionError(message)
    print(f"ok: {message}")


def run(account, label):
    """The checks shared by both modes."""
    version = account.protocol.version
    check(version.build is not None and version.build.major_version == 15, f"{label}: version probe reports Exchange 15 ({version.build})")

    sent = account.sent
    check(sent.total_count is not None, f"{label}: GetFolder sentitems ({sent.name!r}, {sent.total_count} items)")

    message_id = f"<conformance-{uuid.uuid4().hex}@lab.example>"
    mime = (
        f"From: {account.primary_smtp_address}\r\n"
        "To: partner@example.net\r\n"
        "Subject: exchangelib conformance\r\n"
        f"Message-ID: {message_id}\r\n"
        "Date: Tue, 01 Dec 2026 09:30:00 +0000\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
        "Created by the exchangelib conformance check.\r\n"
    ).encode()
    item = Message(account=account, folder=sent, mime_content=mime, message_flags=1)
    item.save()
    check(item.id is not None, f"{label}: CreateItem with MIME content and PR_MESSAGE_FLAGS")

    by_field = list(sent.filter(message_id=message_id).only("subject", "message_id", "message_flags"))
    check(len(by_field) == 1, f"{label}: FindItem by message:InternetMessageId finds 1 item")
    check(by_field[0].message_flags == 1, f"{label}: PR_MESSAGE_FLAGS reads back as 1 (not a draft)")
    by_tag = list(sent.filter(internet_message_id_tag=message_id).only("subject"))
    check(len(by_tag) == 1 and by_tag[0].id == by_field[0].id, f"{label}: FindItem by 0x1035 finds the same item")

    full = sent.get(message_id=message_id)
    check(full.subject == "exchangelib conformance" and not full.is_draft, f"{label}: GetItem with every field")

    fetched = list(account.fetch(ids=[by_field[0]], only_fields=["mime_content"]))
    check(fetched[0].mime_content == mime, f"{label}: GetItem returns the MIME content unchanged")

    fetched[0].delete()
    remaining = sent.filter(message_id=message_id).count()
    check(remaining == 0, f"{label}: DeleteItem removes it")


def basic_mode():
    url = os.environ.get("SIU_LAB_EWS_URL")
    if not url:
        print("skip: basic mode (SIU_LAB_EWS_URL is not set)")
        return
    credentials = Credentials(os.environ["SIU_LAB_USER"], os.environ["SIU_LAB_PASSWORD"])
    config = Configuration(service_endpoint=url, credentials=credentials, auth_type=BASIC)
    account = Account(
        primary_smtp_address=os.environ["SIU_LAB_MAILBOX"],
        config=config,
        autodiscover=False,
        access_type=IMPERSONATION,
    )
    run(account, "basic")


def bearer_mode():
    url = os.environ.get("SIU_LAB_ONLINE_EWS_URL")
    if not url:
        print("skip: bearer mode (SIU_LAB_ONLINE_EWS_URL is not set)")
        return
    mailbox = os.environ["SIU_LAB_CLOUD_MAILBOX"]
    token = os.environ.get("SIU_LAB_ACCESS_TOKEN")
    access_token = None
    if token:
        access_token = {"access_token": token, "token_type": "Bearer", "expires_in": 3600, "expires_at": time.time() + 3600}
    credentials = LabOAuth2Credentials(
        client_id=os.environ.get("SIU_LAB_CLIENT_ID", "lab"),
        client_secret=os.environ.get("SIU_LAB_CLIENT_SECRET"),
        identity=Identity(primary_smtp_address=mailbox),
        access_token=access_token,
    )
    config = Configuration(service_endpoint=url, credentials=credentials, auth_type=OAUTH2)
    account = Account(primary_smtp_address=mailbox, config=config, autodiscover=False, access_type=IMPERSONATION)
    run(account, "bearer")


def main():
    BaseProtocol.HTTP_ADAPTER_CLS = LabCAAdapter
    Message.register("message_flags", MessageFlags)
    Message.register("internet_message_id_tag", InternetMessageId)
    failed = False
    for mode in (basic_mode, bearer_mode):
        try:
            mode()
        except Exception as error:  # noqa: BLE001 - every failure is reported, then the next mode runs
            failed = True
            print(f"FAILED: {mode.__name__}: {type(error).__name__}: {error}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
