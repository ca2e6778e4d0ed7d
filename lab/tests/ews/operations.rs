//! EWS operations on-premises, checked against the world and the schema.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use siu_lab::world::exchange::WellKnownFolder;
use siu_lab::{FaultKind, FaultRule, Service};

use crate::common::*;

const MIME: &str = "From: Alice Archer <alice@lab.example>\r\nTo: partner@example.net\r\nSubject: Quarterly report\r\nMessage-ID: <q3-report@lab.example>\r\nDate: Tue, 01 Dec 2026 09:30:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPlease find the figures below.\r\n";

fn create_item(mailbox: &str, mime: &str, extended: &str) -> String {
    format!(
        r#"<m:CreateItem MessageDisposition="SaveOnly"><m:SavedItemFolderId><t:DistinguishedFolderId Id="sentitems"><t:Mailbox><t:EmailAddress>{mailbox}</t:EmailAddress></t:Mailbox></t:DistinguishedFolderId></m:SavedItemFolderId><m:Items><t:Message><t:MimeContent CharacterSet="UTF-8">{}</t:MimeContent>{extended}<t:IsRead>false</t:IsRead></t:Message></m:Items></m:CreateItem>"#,
        STANDARD.encode(mime)
    )
}

fn find_by_message_id(mailbox: &str, path: &str, message_id: &str) -> String {
    format!(
        r#"<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape><m:IndexedPageItemView MaxEntriesReturned="10" Offset="0" BasePoint="Beginning"/><m:Restriction><t:IsEqualTo>{path}<t:FieldURIOrConstant><t:Constant Value="{}"/></t:FieldURIOrConstant></t:IsEqualTo></m:Restriction><m:ParentFolderIds><t:DistinguishedFolderId Id="sentitems"><t:Mailbox><t:EmailAddress>{mailbox}</t:EmailAddress></t:Mailbox></t:DistinguishedFolderId></m:ParentFolderIds></m:FindItem>"#,
        message_id.replace('<', "&lt;").replace('>', "&gt;")
    )
}

const BY_FIELD: &str = r#"<t:FieldURI FieldURI="message:InternetMessageId"/>"#;
const BY_TAG: &str = r#"<t:ExtendedFieldURI PropertyTag="0x1035" PropertyType="String"/>"#;

fn item_ids(answer: &Answer) -> Vec<(String, String)> {
    let root = answer.xml();
    let mut found = Vec::new();
    all_named(&root, "ItemId", &mut found);
    found
        .iter()
        .map(|e| {
            (
                e.attribute("Id").expect("Id").to_string(),
                e.attribute("ChangeKey").expect("ChangeKey").to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn version_probe_answers_malformed_id() {
    let lab = start(None).await;
    let client = client(&lab);
    let auth = Auth::Basic(
        "alice@lab.example".into(),
        password(&lab, "alice@lab.example"),
    );
    let body = envelope(
        None,
        r#"<m:ConvertId DestinationFormat="EntryId"><m:SourceIds><t:AlternateId Id="DUMMY" Format="EwsId" Mailbox="DUMMY"/></m:SourceIds></m:ConvertId>"#,
    );
    let answer = post(&client, &lab.endpoints().ews, &auth, body).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.code(), "ErrorInvalidIdMalformed");
    let root = answer.xml();
    let version = first_named(&root, "ServerVersionInfo").expect("ServerVersionInfo");
    assert_eq!(version.attribute("MajorVersion"), Some("15"));
    assert_eq!(version.attribute("MinorVersion"), Some("2"));
}

#[tokio::test]
async fn sent_item_round_trip_through_impersonation() {
    let capture = tempfile::tempdir().expect("capture directory");
    let lab = start(Some(capture.path())).await;
    let client = client(&lab);
    let auth = service_account(&lab);
    let ews = lab.endpoints().ews.clone();
    let alice = "alice@lab.example";

    // 1. Create with PR_MESSAGE_FLAGS and PR_CLIENT_SUBMIT_TIME: not a draft, sent in the past.
    let extended = r#"<t:ExtendedProperty><t:ExtendedFieldURI PropertyTag="0xe07" PropertyType="Integer"/><t:Value>1</t:Value></t:ExtendedProperty><t:ExtendedProperty><t:ExtendedFieldURI PropertyTag="0x0039" PropertyType="SystemTime"/><t:Value>2026-12-01T09:30:00Z</t:Value></t:ExtendedProperty><t:ExtendedProperty><t:ExtendedFieldURI DistinguishedPropertySetId="PublicStrings" PropertyName="SiuProcessed" PropertyType="String"/><t:Value>v1</t:Value></t:ExtendedProperty>"#;
    let created = post(
        &client,
        &ews,
        &auth,
        envelope(Some(alice), &create_item(alice, MIME, extended)),
    )
    .await;
    assert_eq!(created.code(), "NoError", "{}", created.text);
    let (id, change_key) = item_ids(&created).pop().expect("the new item's ID");
    assert!(id.starts_with("AAMkA"), "{id}");
    {
        let world = lab.state().read();
        let owner = world.directory.user_by_upn(alice).expect("alice").id;
        let sent = world.exchange.mailboxes[&owner].folder(WellKnownFolder::SentItems);
        let item = sent
            .items
            .iter()
            .find(|i| i.subject == "Quarterly report")
            .expect("stored");
        assert!(
            !item.is_draft(),
            "PR_MESSAGE_FLAGS at creation clears the draft flag"
        );
        assert_eq!(
            item.internet_message_id.as_deref(),
            Some("<q3-report@lab.example>")
        );
        assert_eq!(
            item.sent.map(|t| t.to_rfc3339()),
            Some("2026-12-01T09:30:00+00:00".into())
        );
    }

    // 2. Find it by Message-ID, through the field URI and through the 0x1035 tag.
    for path in [BY_FIELD, BY_TAG] {
        let found = post(
            &client,
            &ews,
            &auth,
            envelope(
                Some(alice),
                &find_by_message_id(alice, path, "<q3-report@lab.example>"),
            ),
        )
        .await;
        assert_eq!(found.code(), "NoError", "{}", found.text);
        let root = found.message();
        let folder = root.child("RootFolder").expect("RootFolder");
        assert_eq!(folder.attribute("TotalItemsInView"), Some("1"), "{path}");
        assert_eq!(folder.attribute("IncludesLastItemInRange"), Some("true"));
        assert_eq!(item_ids(&found), vec![(id.clone(), change_key.clone())]);
    }

    // 3. Fetch MIME and extended properties.
    let get = format!(
        r#"<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:IncludeMimeContent>true</t:IncludeMimeContent><t:AdditionalProperties><t:FieldURI FieldURI="item:IsDraft"/><t:ExtendedFieldURI PropertyTag="0x0E07" PropertyType="Integer"/><t:ExtendedFieldURI DistinguishedPropertySetId="PublicStrings" PropertyName="SiuProcessed" PropertyType="String"/></t:AdditionalProperties></m:ItemShape><m:ItemIds><t:ItemId Id="{id}"/></m:ItemIds></m:GetItem>"#
    );
    let fetched = post(&client, &ews, &auth, envelope(Some(alice), &get)).await;
    assert_eq!(fetched.code(), "NoError", "{}", fetched.text);
    let root = fetched.xml();
    let mime = first_named(&root, "MimeContent").expect("MimeContent");
    assert_eq!(
        STANDARD.decode(mime.text.trim()).expect("base64"),
        MIME.as_bytes()
    );
    assert_eq!(
        first_named(&root, "IsDraft").map(|e| e.text.as_str()),
        Some("false")
    );
    let mut values = Vec::new();
    all_named(&root, "Value", &mut values);
    let values: Vec<&str> = values.iter().map(|v| v.text.as_str()).collect();
    assert_eq!(values, vec!["1", "v1"]);

    // 4. Update the named property; a second update with the old change key conflicts.
    let update = |key: &str, value: &str| {
        format!(
            r#"<m:UpdateItem ConflictResolution="AutoResolve" MessageDisposition="SaveOnly"><m:ItemChanges><t:ItemChange><t:ItemId Id="{id}" ChangeKey="{key}"/><t:Updates><t:SetItemField><t:ExtendedFieldURI DistinguishedPropertySetId="PublicStrings" PropertyName="SiuProcessed" PropertyType="String"/><t:Message><t:ExtendedProperty><t:ExtendedFieldURI DistinguishedPropertySetId="PublicStrings" PropertyName="SiuProcessed" PropertyType="String"/><t:Value>{value}</t:Value></t:ExtendedProperty></t:Message></t:SetItemField></t:Updates></t:ItemChange></m:ItemChanges></m:UpdateItem>"#
        )
    };
    let updated = post(
        &client,
        &ews,
        &auth,
        envelope(Some(alice), &update(&change_key, "v2")),
    )
    .await;
    assert_eq!(updated.code(), "NoError", "{}", updated.text);
    let (_, new_key) = item_ids(&updated).pop().expect("updated ID");
    assert_ne!(new_key, change_key);
    let stale = post(
        &client,
        &ews,
        &auth,
        envelope(Some(alice), &update(&change_key, "v3")),
    )
    .await;
    assert_eq!(stale.code(), "ErrorIrresolvableConflict");

    // 5. Delete it; it is gone from the folder and a second delete finds nothing.
    let delete = format!(
        r#"<m:DeleteItem DeleteType="HardDelete"><m:ItemIds><t:ItemId Id="{id}" ChangeKey="{new_key}"/></m:ItemIds></m:DeleteItem>"#
    );
    let deleted = post(&client, &ews, &auth, envelope(Some(alice), &delete)).await;
    assert_eq!(deleted.code(), "NoError", "{}", deleted.text);
    let again = post(&client, &ews, &auth, envelope(Some(alice), &delete)).await;
    assert_eq!(again.code(), "ErrorItemNotFound");
    let gone = post(
        &client,
        &ews,
        &auth,
        envelope(
            Some(alice),
            &find_by_message_id(alice, BY_TAG, "<q3-report@lab.example>"),
        ),
    )
    .await;
    assert_eq!(
        gone.message()
            .child("RootFolder")
            .and_then(|f| f.attribute("TotalItemsInView")),
        Some("0")
    );

    // 6. An injected ErrorServerBusy fault, then every message exchanged validates.
    lab.faults().add(FaultRule {
        service: Service::Ews,
        operation: Some("FindItem".into()),
        fault: FaultKind::ServerBusy { back_off_ms: 2500 },
        probability: 1.0,
        remaining: Some(1),
    });
    let busy = post(
        &client,
        &ews,
        &auth,
        envelope(Some(alice), &find_by_message_id(alice, BY_FIELD, "<x@y>")),
    )
    .await;
    assert_eq!(busy.status, 500);
    assert_eq!(busy.code(), "ErrorServerBusy");
    let root = busy.xml();
    let back_off = first_named(&root, "Value").expect("BackOffMilliseconds");
    assert_eq!(back_off.attribute("Name"), Some("BackOffMilliseconds"));
    assert_eq!(back_off.text, "2500");
    assert_eq!(lab.journal().count(Service::Ews, "FindItem"), 4);
    let checked = validate_captures(capture.path());
    eprintln!("{checked} captured messages validate");
}

#[tokio::test]
async fn message_without_flags_is_a_draft() {
    let lab = start(None).await;
    let client = client(&lab);
    let auth = service_account(&lab);
    let alice = "alice@lab.example";
    let created = post(
        &client,
        &lab.endpoints().ews,
        &auth,
        envelope(Some(alice), &create_item(alice, MIME, "")),
    )
    .await;
    assert_eq!(created.code(), "NoError", "{}", created.text);
    let (id, _) = item_ids(&created).pop().expect("ID");
    let get = format!(
        r#"<m:GetItem><m:ItemShape><t:BaseShape>Default</t:BaseShape></m:ItemShape><m:ItemIds><t:ItemId Id="{id}"/></m:ItemIds></m:GetItem>"#
    );
    let fetched = post(
        &client,
        &lab.endpoints().ews,
        &auth,
        envelope(Some(alice), &get),
    )
    .await;
    let root = fetched.xml();
    assert_eq!(
        first_named(&root, "IsDraft").map(|e| e.text.as_str()),
        Some("true")
    );
    assert_eq!(
        first_named(&root, "Subject").map(|e| e.text.as_str()),
        Some("Quarterly report")
    );
}

#[tokio::test]
async fn paging_reports_the_last_item() {
    let lab = start(None).await;
    let client = client(&lab);
    let auth = service_account(&lab);
    let bob = "bob@lab.example";
    for n in 0..4 {
        let mime = MIME.replace("q3-report", &format!("page-{n}"));
        let created = post(
            &client,
            &lab.endpoints().ews,
            &auth,
            envelope(Some(bob), &create_item(bob, &mime, "")),
        )
        .await;
        assert_eq!(created.code(), "NoError");
    }
    // Bob's fixture has one earlier message, so the folder contains five.
    let mut seen = Vec::new();
    for (offset, last) in [(0, "false"), (2, "false"), (4, "true")] {
        let body = format!(
            r#"<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape><m:IndexedPageItemView MaxEntriesReturned="2" Offset="{offset}" BasePoint="Beginning"/><m:ParentFolderIds><t:DistinguishedFolderId Id="sentitems"/></m:ParentFolderIds></m:FindItem>"#
        );
        let page = post(
            &client,
            &lab.endpoints().ews,
            &auth,
            envelope(Some(bob), &body),
        )
        .await;
        let message = page.message();
        let folder = message.child("RootFolder").expect("RootFolder");
        assert_eq!(folder.attribute("TotalItemsInView"), Some("5"));
        assert_eq!(
            folder.attribute("IncludesLastItemInRange"),
            Some(last),
            "offset {offset}"
        );
        seen.extend(item_ids(&page));
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 5, "pages do not overlap");
}

#[tokio::test]
async fn sent_items_keeps_its_localized_name() {
    let lab = start(None).await;
    let client = client(&lab);
    let auth = service_account(&lab);
    let grace = "grace@lab.example";
    let body = format!(
        r#"<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties><t:FieldURI FieldURI="folder:DisplayName"/><t:FieldURI FieldURI="folder:DistinguishedFolderId"/><t:FieldURI FieldURI="folder:TotalCount"/></t:AdditionalProperties></m:FolderShape><m:FolderIds><t:DistinguishedFolderId Id="sentitems"><t:Mailbox><t:EmailAddress>{grace}</t:EmailAddress></t:Mailbox></t:DistinguishedFolderId></m:FolderIds></m:GetFolder>"#
    );
    let answer = post(
        &client,
        &lab.endpoints().ews,
        &auth,
        envelope(Some(grace), &body),
    )
    .await;
    assert_eq!(answer.code(), "NoError", "{}", answer.text);
    let root = answer.xml();
    assert_eq!(
        first_named(&root, "DisplayName").map(|e| e.text.as_str()),
        Some("Gesendete Elemente")
    );
    assert_eq!(
        first_named(&root, "DistinguishedFolderId").map(|e| e.text.as_str()),
        Some("sentitems")
    );
    assert_eq!(
        first_named(&root, "TotalCount").map(|e| e.text.as_str()),
        Some("0")
    );
}

#[tokio::test]
async fn resolve_names_finds_recipients() {
    let lab = start(None).await;
    let client = client(&lab);
    let auth = Auth::Basic(
        "alice@lab.example".into(),
        password(&lab, "alice@lab.example"),
    );
    let resolve = |entry: &str| {
        envelope(
            None,
            &format!(
                r#"<m:ResolveNames ReturnFullContactData="true"><m:UnresolvedEntry>{entry}</m:UnresolvedEntry></m:ResolveNames>"#
            ),
        )
    };
    let one = post(
        &client,
        &lab.endpoints().ews,
        &auth,
        resolve("heidi.hill@lab.example"),
    )
    .await;
    assert_eq!(one.code(), "NoError", "{}", one.text);
    let root = one.xml();
    assert_eq!(
        first_named(&root, "Name").map(|e| e.text.as_str()),
        Some("Heidi Hill")
    );
    let none = post(&client, &lab.endpoints().ews, &auth, resolve("nobody-here")).await;
    assert_eq!(none.code(), "ErrorNameResolutionNoResults");
    let many = post(&client, &lab.endpoints().ews, &auth, resolve("staff00")).await;
    assert_eq!(many.code(), "ErrorNameResolutionMultipleResults");
}

#[tokio::test]
async fn injected_faults_render_as_exchange_does() {
    let lab = start(None).await;
    let client = client(&lab);
    let auth = service_account(&lab);
    let ews = lab.endpoints().ews.clone();
    let body = || {
        envelope(
            Some("alice@lab.example"),
            &find_by_message_id("alice@lab.example", BY_TAG, "<x@y>"),
        )
    };
    let rule = |fault: FaultKind| FaultRule {
        service: Service::Ews,
        operation: Some("FindItem".into()),
        fault,
        probability: 1.0,
        remaining: Some(1),
    };

    lab.faults().add(rule(FaultKind::ExceededConnectionCount));
    let exceeded = post(&client, &ews, &auth, body()).await;
    assert_eq!(exceeded.status, 500);
    assert_eq!(exceeded.code(), "ErrorExceededConnectionCount");

    lab.faults().add(rule(FaultKind::Status { code: 503 }));
    assert_eq!(post(&client, &ews, &auth, body()).await.status, 503);

    lab.faults().add(rule(FaultKind::TooManyRequests {
        retry_after_secs: 7,
    }));
    let throttled = post(&client, &ews, &auth, body()).await;
    assert_eq!(throttled.status, 429);
    assert_eq!(
        throttled
            .headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("7")
    );

    lab.faults().add(rule(FaultKind::Drop));
    let dropped = client
        .post(ews.clone())
        .basic_auth(
            "svc-siu",
            Some(lab.secrets().get("svc-siu.password").expect("password")),
        )
        .body(body())
        .send()
        .await;
    assert!(dropped.is_err(), "a dropped connection gives no response");

    // Every rule was used once; the next request is served normally.
    let served = post(&client, &ews, &auth, body()).await;
    assert_eq!(served.code(), "NoError");
}

#[tokio::test]
async fn reference_samples_are_answered() {
    let Some(schema) = schema_dir() else {
        eprintln!("skipping the reference samples: ../shared/reference is absent");
        return;
    };
    let samples = schema.join("../ews-samples");
    let capture = tempfile::tempdir().expect("capture directory");
    let lab = start(Some(capture.path())).await;
    let client = client(&lab);
    let service = service_account(&lab);
    let alice = Auth::Basic("LAB\\alice".into(), password(&lab, "alice@lab.example"));
    let mut names: Vec<_> = std::fs::read_dir(&samples)
        .expect("samples directory")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "xml"))
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no samples in {}", samples.display());

    for path in names {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("file name")
            .to_string();
        let body = std::fs::read_to_string(&path).expect("sample reads");
        // Samples were captured with other credentials: sign in as the lab's accounts.
        let answer = if name.contains("bearer") {
            let app_id: uuid::Uuid = lab
                .secrets()
                .get("manual-app.client-id")
                .expect("client ID")
                .parse()
                .expect("GUID");
            {
                let mut world = lab.state().write();
                world.exchange.online.ews_enabled = Some(true);
            }
            let token = lab
                .state()
                .tokens
                .issue(
                    siu_lab::access::Resource::ExchangeOnline,
                    app_id,
                    uuid::Uuid::new_v4(),
                    vec!["full_access_as_app".into()],
                    std::time::Duration::from_secs(600),
                )
                .expect("token");
            post(
                &client,
                &lab.endpoints().exchange_online_ews,
                &Auth::Bearer(token),
                body,
            )
            .await
        } else if name.contains("noauth") {
            post(&client, &lab.endpoints().ews, &Auth::None, body).await
        } else if body.contains("ExchangeImpersonation") {
            post(&client, &lab.endpoints().ews, &service, body).await
        } else {
            post(&client, &lab.endpoints().ews, &alice, body).await
        };
        let expected = match name.as_str() {
            n if n.contains("noauth") => 401,
            n if n.contains("bearer") || n.contains("root-impersonation") => 500,
            _ => 200,
        };
        assert_eq!(answer.status, expected, "{name}: {}", answer.text);
    }
    validate_captures(capture.path());
}
