"""Replace spool messages in Sent Items with exchangelib: the reference that siuctl's update
loop is measured against.

For each file in SPOOL/new/ it does the per-message work of `siuctl run --once`. It claims
the file by renaming it into cur/ and removes the X-SIU- fields. It picks the mailbox:
X-SIU-Submitter, else a Sender that differs from From, else From. Impersonating that mailbox,
it finds the original in sentitems by PR_INTERNET_MESSAGE_ID (0x1035). It creates the
processed MIME there with PR_MESSAGE_FLAGS (0x0E07) set to MSGFLAG_READ, the original's
PR_CLIENT_SUBMIT_TIME (0x0039) and PR_MESSAGE_DELIVERY_TIME (0x0E06), and siuctl's two marker
properties. Then it soft-deletes the original and deletes the spool file. A pool of --workers
threads shares one exchangelib protocol with as many HTTP connections.

It leaves out what the update loop does beyond that: the directory lookup of each sender, the
scope check, the durable state file per message, retries with back-off and waiting for a late
original. A message whose original is missing, or whose request fails, moves to failed/.

Configuration comes from the environment, as in tests/exchangelib/conformance.py:

  SIU_LAB_CA          the lab's CA certificate (PEM); the only trust anchor used
  SIU_LAB_EWS_URL     on-premises EWS URL
  SIU_LAB_USER        service account (DOMAIN\\user or UPN) with ApplicationImpersonation
  SIU_LAB_PASSWORD    its password

Prints one JSON object on standard output: {"updated": N, "failed": N, "seconds": S}, where
seconds is the wall time from the first claim to the last file finished.
"""

import argparse
import email.parser
import email.policy
import email.utils
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests.adapters
from exchangelib import BASIC, IMPERSONATION, NTLM, Account, Configuration, Credentials, ExtendedProperty, Message, Q
from exchangelib.fields import FieldPath
from exchangelib.items import ID_ONLY, SHALLOW, SOFT_DELETE
from exchangelib.protocol import BaseProtocol
from exchangelib.restriction import Restriction
from exchangelib.services import FindItem

# The property set of the marker properties that siuctl's update loop writes.
MARKER_PROPERTY_SET = "2f388e93-d37f-42f9-b720-43205acd0c39"
MSGFLAG_READ = 1
SPOOL_PREFIX = b"x-siu-"
# The properties the search returns, filled in once the extended properties are registered.
FOUND_FIELDS = set()


class LabCAAdapter(requests.adapters.HTTPAdapter):
    """Verifies the lab's certificates against the lab CA, and nothing else."""

    def cert_verify(self, conn, url, verify, cert):
        super().cert_verify(conn=conn, url=url, verify=os.environ["SIU_LAB_CA"], cert=cert)


class InternetMessageId(ExtendedProperty):
    """PR_INTERNET_MESSAGE_ID, the tag the original is found by."""

    property_tag = 0x1035
    property_type = "String"


class MessageFlags(ExtendedProperty):
    """PR_MESSAGE_FLAGS: MSGFLAG_READ without MSGFLAG_UNSENT, so the new item is not a draft."""

    property_tag = 0x0E07
    property_type = "Integer"


class ClientSubmitTime(ExtendedProperty):
    """PR_CLIENT_SUBMIT_TIME, the send time that Outlook shows."""

    property_tag = 0x0039
    property_type = "SystemTime"


class DeliveryTime(ExtendedProperty):
    """PR_MESSAGE_DELIVERY_TIME."""

    property_tag = 0x0E06
    property_type = "SystemTime"


class SourceKey(ExtendedProperty):
    """siuctl-source: the original's Message-ID, which marks the replacement."""

    property_set_id = MARKER_PROPERTY_SET
    property_name = "siuctl-source"
    property_type = "String"


class MarkedOriginal(ExtendedProperty):
    """siuctl-original-message-id: the original's Message-ID."""

    property_set_id = MARKER_PROPERTY_SET
    property_name = "siuctl-original-message-id"
    property_type = "String"


class SpoolFile:
    """One spool file split into its X-SIU- fields and the processed message."""

    def __init__(self, data):
        self.fields = {}
        end = 0
        name = None
        # The X-SIU- fields come first, each possibly folded onto continuation lines.
        while end < len(data):
            newline = data.find(b"\n", end)
            line_end = len(data) if newline < 0 else newline + 1
            line = data[end:line_end]
            if line[:1] in (b" ", b"\t") and name is not None:
                self.fields[name] += line.strip().decode("utf-8", "replace")
            elif line[: len(SPOOL_PREFIX)].lower() == SPOOL_PREFIX and b":" in line:
                raw_name, _, value = line.partition(b":")
                name = raw_name.decode("ascii", "replace").lower()
                self.fields[name] = value.strip().decode("utf-8", "replace")
            else:
                break
            end = line_end
        self.mime = data[end:]
        headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(self.mime)
        self.message_id = (self.fields.get("x-siu-original-message-id") or headers.get("Message-ID", "")).strip()
        from_address = email.utils.parseaddr(headers.get("From", ""))[1].lower()
        sender_address = email.utils.parseaddr(headers.get("Sender", ""))[1].lower()
        submitter = self.fields.get("x-siu-submitter", "").lower()
        self.mailbox = submitter or (sender_address if sender_address and sender_address != from_address else from_address)
        split = self.fields.get("x-siu-split")
        self.source_key = f"{self.message_id} {split}" if split else self.message_id


class Replacer:
    """Replacement of the messages of one spool, with a shared exchangelib configuration."""

    def __init__(self, spool, workers, auth):
        self.spool = spool
        credentials = Credentials(os.environ["SIU_LAB_USER"], os.environ["SIU_LAB_PASSWORD"])
        self.config = Configuration(
            service_endpoint=os.environ["SIU_LAB_EWS_URL"],
            credentials=credentials,
            auth_type=NTLM if auth == "ntlm" else BASIC,
            max_connections=workers,
        )
        self.accounts = {}
        self.accounts_lock = threading.Lock()

    def account(self, mailbox):
        with self.accounts_lock:
            account = self.accounts.get(mailbox)
            if account is None:
                account = Account(
                    primary_smtp_address=mailbox,
                    config=self.config,
                    autodiscover=False,
                    access_type=IMPERSONATION,
                )
                self.accounts[mailbox] = account
            return account

    def claim(self, name):
        try:
            os.rename(os.path.join(self.spool, "new", name), os.path.join(self.spool, "cur", name))
            return True
        except FileNotFoundError:
            return False

    def fail(self, name, reason):
        failed = os.path.join(self.spool, "failed")
        os.replace(os.path.join(self.spool, "cur", name), os.path.join(failed, name))
        with open(os.path.join(failed, name + ".reason"), "w", encoding="utf-8") as file:
            file.write(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n{reason}\n")

    def process(self, name):
        """Replace one message and return True when its Sent Items item was replaced."""
        if not self.claim(name):
            return False
        path = os.path.join(self.spool, "cur", name)
        try:
            with open(path, "rb") as file:
                spool_file = SpoolFile(file.read())
            if not spool_file.message_id or not spool_file.mailbox:
                self.fail(name, "the file names no Message-ID or sender")
                return False
            replaced = self.replace(spool_file)
        except Exception as error:  # noqa: BLE001 - every failure moves the file with its reason
            self.fail(name, f"{type(error).__name__}: {error}")
            return False
        if not replaced:
            self.fail(name, f"original_not_found: {spool_file.message_id} in {spool_file.mailbox}")
            return False
        os.remove(path)
        return True

    def replace(self, spool_file):
        """Replace the original of one spool file, and return False when it is not in Sent Items."""
        account = self.account(spool_file.mailbox)
        sent = account.sent

        # exchangelib's QuerySet counts extended properties as complex fields and reads them
        # with a GetItem after the FindItem. EWS returns them from FindItem, so the search calls
        # the FindItem service with them, and the script makes the update loop's three calls
        # per message.
        query = Q(internet_message_id_tag=spool_file.message_id) | Q(siu_original=spool_file.message_id)
        found = list(
            FindItem(account=account).call(
                folders=[sent],
                additional_fields=FOUND_FIELDS,
                restriction=Restriction(query, folders=[sent], applies_to=Restriction.ITEMS),
                order_fields=None,
                shape=ID_ONLY,
                query_string=None,
                depth=SHALLOW,
                calendar_view=None,
                max_items=None,
                offset=0,
            )
        )
        originals = [item for item in found if item.siu_source is None]

        if any(item.siu_source == spool_file.source_key for item in found):
            # A replacement exists already, so only an original that an interrupted run left
            # behind remains to delete.
            if originals:
                account.bulk_delete(ids=originals, delete_type=SOFT_DELETE)
            return True
        if not originals:
            return False

        original = originals[0]
        replacement = Message(
            account=account,
            folder=sent,
            mime_content=spool_file.mime,
            message_flags=MSGFLAG_READ,
            client_submit_time=original.datetime_sent,
            delivery_time=original.delivery_time or original.datetime_sent,
            siu_source=spool_file.source_key,
            siu_original=spool_file.message_id,
        )
        replacement.save()

        for result in account.bulk_delete(ids=[original], delete_type=SOFT_DELETE):
            if isinstance(result, Exception):
                raise result
        return True


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--spool", required=True, help="the spool directory, which contains new/")
    parser.add_argument("--workers", type=int, default=8, help="threads and HTTP connections (default 8)")
    parser.add_argument("--auth", choices=["basic", "ntlm"], default="basic", help="EWS authentication (default basic)")
    args = parser.parse_args()

    BaseProtocol.HTTP_ADAPTER_CLS = LabCAAdapter
    Message.register("internet_message_id_tag", InternetMessageId)
    Message.register("message_flags", MessageFlags)
    Message.register("client_submit_time", ClientSubmitTime)
    Message.register("delivery_time", DeliveryTime)
    Message.register("siu_source", SourceKey)
    Message.register("siu_original", MarkedOriginal)
    FOUND_FIELDS.update(
        FieldPath(field=Message.get_field_by_fieldname(name))
        for name in ("datetime_sent", "size", "delivery_time", "internet_message_id_tag", "siu_source", "siu_original")
    )
    for folder in ("cur", "failed"):
        os.makedirs(os.path.join(args.spool, folder), exist_ok=True)

    replacer = Replacer(args.spool, args.workers, args.auth)
    names = sorted(os.listdir(os.path.join(args.spool, "new")))
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        results = list(pool.map(replacer.process, names))
    seconds = time.monotonic() - started
    updated = sum(1 for result in results if result)
    summary = {"updated": updated, "failed": len(results) - updated, "seconds": round(seconds, 3)}
    print(json.dumps(summary))
    return 0 if updated == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
