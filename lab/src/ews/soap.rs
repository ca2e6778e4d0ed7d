//! The SOAP 1.1 envelope: reading a request's header and operation, writing responses and
//! faults with the prefixes Exchange uses (`s:` envelope, `m:` messages, `t:` types).
//!
//! See <https://learn.microsoft.com/exchange/client-developer/web-service-reference/ews-xml-elements-in-exchange>.

use std::fmt::Write as _;

use super::xml::{Element, escape};

/// The SOAP 1.1 envelope namespace.
pub const NS_SOAP: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// The EWS messages namespace (`m:`).
pub const NS_MESSAGES: &str = "http://schemas.microsoft.com/exchange/services/2006/messages";
/// The EWS types namespace (`t:`).
pub const NS_TYPES: &str = "http://schemas.microsoft.com/exchange/services/2006/types";
/// The namespace of the `ResponseCode` and `Message` elements in a fault's detail.
pub const NS_ERRORS: &str = "http://schemas.microsoft.com/exchange/services/2006/errors";

/// The build a server reports in `ServerVersionInfo`.
///
/// See <https://learn.microsoft.com/exchange/client-developer/web-service-reference/serverversioninfo>.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerVersion {
    /// `MajorVersion`.
    pub major: u32,
    /// `MinorVersion`.
    pub minor: u32,
    /// `MajorBuildNumber`.
    pub build: u32,
    /// `MinorBuildNumber`.
    pub revision: u32,
    /// `Version`, the schema version the server speaks.
    pub version: &'static str,
}

/// Exchange Server 2019 CU14 (15.2.1544.4), as an on-premises server reports it.
pub const ON_PREMISES_VERSION: ServerVersion = ServerVersion {
    major: 15,
    minor: 2,
    build: 1544,
    revision: 4,
    version: "V2017_07_11",
};

/// An Exchange Online build, as `outlook.office365.com` reports it.
pub const ONLINE_VERSION: ServerVersion = ServerVersion {
    major: 15,
    minor: 20,
    build: 8769,
    revision: 21,
    version: "V2018_01_08",
};

/// The `RequestServerVersion` values of the Exchange 2016 schema (`ExchangeVersionType`).
const SCHEMA_VERSIONS: &[&str] = &[
    "Exchange2007",
    "Exchange2007_SP1",
    "Exchange2009",
    "Exchange2010",
    "Exchange2010_SP1",
    "Exchange2010_SP2",
    "Exchange2012",
    "Exchange2013",
    "Exchange2013_SP1",
    "Exchange2015",
    "Exchange2016",
    "V2015_10_05",
    "V2016_01_06",
    "V2016_04_13",
    "V2016_07_13",
    "V2016_10_10",
];

/// The mailbox to impersonate, as `ConnectingSID` names it.
///
/// See <https://learn.microsoft.com/exchange/client-developer/web-service-reference/connectingsid>.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectingSid {
    /// `PrincipalName`: the user principal name.
    PrincipalName(String),
    /// `SID`: the security identifier in SDDL form.
    Sid(String),
    /// `PrimarySmtpAddress`.
    PrimarySmtpAddress(String),
    /// `SmtpAddress`: any SMTP address of the mailbox.
    SmtpAddress(String),
}

impl ConnectingSid {
    /// Returns the address or name as the request wrote it.
    pub fn value(&self) -> &str {
        match self {
            ConnectingSid::PrincipalName(v)
            | ConnectingSid::Sid(v)
            | ConnectingSid::PrimarySmtpAddress(v)
            | ConnectingSid::SmtpAddress(v) => v,
        }
    }
}

/// A parsed request envelope.
#[derive(Debug, Clone)]
pub struct Request {
    /// The first child of `Body`: the operation element (`FindItem`, ...).
    pub operation: Element,
    /// `RequestServerVersion/@Version`, when present.
    pub version: Option<String>,
    /// `ExchangeImpersonation/ConnectingSID`, when present.
    pub impersonation: Option<ConnectingSid>,
}

impl Request {
    /// Reads a request envelope; errors are the schema faults Exchange sends.
    pub fn from_envelope(root: Element) -> Result<Request, Fault> {
        if root.name != "Envelope" {
            return Err(Fault::schema_violation(
                &root,
                format!("The root element is '{}', expected 'Envelope'.", root.name),
            ));
        }
        let mut version = None;
        let mut impersonation = None;
        if let Some(header) = root.child("Header") {
            if let Some(requested) = header.child("RequestServerVersion") {
                let value = requested.attribute("Version").unwrap_or_default();
                if !SCHEMA_VERSIONS.contains(&value) {
                    return Err(Fault::schema_violation(
                        requested,
                        format!(
                            "The 'Version' attribute is invalid - The value '{value}' is invalid according to its datatype 'ExchangeVersionType'."
                        ),
                    ));
                }
                version = Some(value.to_string());
            }
            if let Some(element) = header.child("ExchangeImpersonation") {
                impersonation = Some(connecting_sid(element)?);
            }
        }
        let Some(body) = root.child("Body") else {
            return Err(Fault::schema_violation(
                &root,
                "The element 'Envelope' has no 'Body' element.".into(),
            ));
        };
        let mut operations = body.children.iter();
        let Some(operation) = operations.next() else {
            return Err(Fault::invalid_request("The request body is empty."));
        };
        if let Some(extra) = operations.next() {
            return Err(Fault::schema_violation(
                extra,
                format!(
                    "The element 'Body' has invalid child element '{}'.",
                    extra.name
                ),
            ));
        }
        Ok(Request {
            operation: operation.clone(),
            version,
            impersonation,
        })
    }
}

fn connecting_sid(element: &Element) -> Result<ConnectingSid, Fault> {
    let Some(sid) = element.child("ConnectingSID") else {
        return Err(Fault::schema_violation(
            element,
            "The element 'ExchangeImpersonation' has incomplete content. List of possible elements expected: 'ConnectingSID'.".into(),
        ));
    };
    let Some(choice) = sid.children.first() else {
        return Err(Fault::schema_violation(
            sid,
            "The element 'ConnectingSID' has incomplete content.".into(),
        ));
    };
    let value = choice.text.trim().to_string();
    match choice.name.as_str() {
        "PrincipalName" => Ok(ConnectingSid::PrincipalName(value)),
        "SID" => Ok(ConnectingSid::Sid(value)),
        "PrimarySmtpAddress" => Ok(ConnectingSid::PrimarySmtpAddress(value)),
        "SmtpAddress" => Ok(ConnectingSid::SmtpAddress(value)),
        other => Err(Fault::schema_violation(
            choice,
            format!("The element 'ConnectingSID' has invalid child element '{other}'."),
        )),
    }
}

/// Writes a response envelope around `body`, with `ServerVersionInfo` in the header.
pub fn envelope(version: &ServerVersion, body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 700);
    out.push_str(r#"<?xml version="1.0" encoding="utf-8"?>"#);
    let _ = write!(out, r#"<s:Envelope xmlns:s="{NS_SOAP}"><s:Header>"#);
    let _ = write!(
        out,
        r#"<h:ServerVersionInfo MajorVersion="{}" MinorVersion="{}" MajorBuildNumber="{}" MinorBuildNumber="{}" Version="{}" xmlns:h="{NS_TYPES}" xmlns="{NS_TYPES}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema"/>"#,
        version.major, version.minor, version.build, version.revision, version.version
    );
    out.push_str(r#"</s:Header><s:Body xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema">"#);
    out.push_str(body);
    out.push_str("</s:Body></s:Envelope>");
    out
}

/// Opens an operation's response element: `<m:FindItemResponse ...><m:ResponseMessages>`.
pub fn open_response(out: &mut String, operation: &str) {
    let _ = write!(
        out,
        r#"<m:{operation}Response xmlns:m="{NS_MESSAGES}" xmlns:t="{NS_TYPES}"><m:ResponseMessages>"#
    );
}

/// Closes what [`open_response`] opened.
pub fn close_response(out: &mut String, operation: &str) {
    let _ = write!(out, "</m:ResponseMessages></m:{operation}Response>");
}

/// An error that one response message carries (`ResponseClass="Error"`), while the request
/// as a whole succeeded.
///
/// See <https://learn.microsoft.com/exchange/client-developer/web-service-reference/responsecode>.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseError {
    /// `ResponseCode`, such as `ErrorItemNotFound`.
    pub code: &'static str,
    /// `MessageText`.
    pub text: String,
    /// Children of `MessageXml`, already serialized, when the error carries details.
    pub message_xml: Option<String>,
}

impl ResponseError {
    /// Creates an error with Exchange's message text for `code`.
    pub fn new(code: &'static str, text: impl Into<String>) -> Self {
        Self {
            code,
            text: text.into(),
            message_xml: None,
        }
    }

    /// `ErrorItemNotFound`: the ID is well-formed but names nothing in the store.
    pub fn item_not_found() -> Self {
        Self::new(
            "ErrorItemNotFound",
            "The specified object was not found in the store., The process failed to get the correct properties.",
        )
    }

    /// `ErrorInvalidIdMalformed`: the ID is not one this server issued.
    pub fn id_malformed() -> Self {
        Self::new("ErrorInvalidIdMalformed", "Id is malformed.")
    }

    /// `ErrorAccessDenied`: the caller has no rights on the mailbox or folder.
    pub fn access_denied() -> Self {
        Self::new(
            "ErrorAccessDenied",
            "Access is denied. Check credentials and try again.",
        )
    }

    /// `ErrorNonExistentMailbox` for an SMTP address.
    pub fn non_existent_mailbox(address: &str) -> Self {
        Self {
            code: "ErrorNonExistentMailbox",
            text: "The SMTP address has no mailbox associated with it.".into(),
            message_xml: Some(format!(
                r#"<t:Value Name="SmtpAddress">{}</t:Value>"#,
                escape(address)
            )),
        }
    }

    /// `ErrorMissingEmailAddress`: an account without a mailbox named no mailbox.
    pub fn missing_email_address() -> Self {
        Self::new(
            "ErrorMissingEmailAddress",
            "When making a request as an account that does not have a mailbox, you must specify the mailbox primary SMTP address for any distinguished folder Ids.",
        )
    }

    /// Writes `<m:{element} ResponseClass="Error">` with the text, code and details; the
    /// caller writes the operation's empty containers and the closing tag.
    pub fn write_open(&self, out: &mut String, element: &str) {
        let _ = write!(out, r#"<m:{element} ResponseClass="Error">"#);
        let _ = write!(out, "<m:MessageText>{}</m:MessageText>", escape(&self.text));
        let _ = write!(out, "<m:ResponseCode>{}</m:ResponseCode>", self.code);
        out.push_str("<m:DescriptiveLinkKey>0</m:DescriptiveLinkKey>");
        if let Some(xml) = &self.message_xml {
            let _ = write!(out, "<m:MessageXml>{xml}</m:MessageXml>");
        }
    }
}

/// Writes `<m:{element} ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode>`.
pub fn write_success_open(out: &mut String, element: &str) {
    let _ = write!(
        out,
        r#"<m:{element} ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode>"#
    );
}

/// A SOAP fault: the request as a whole failed (HTTP 500).
///
/// See <https://learn.microsoft.com/exchange/client-developer/exchange-web-services/ews-throttling-in-exchange>.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// The EWS response code, also the fault code in the types namespace.
    pub code: &'static str,
    /// `faultstring` and the detail's `Message`.
    pub message: String,
    /// Children of the detail's `MessageXml`, serialized.
    pub message_xml: Option<String>,
}

impl Fault {
    /// Creates a fault with no details.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            message_xml: None,
        }
    }

    /// `ErrorSchemaValidation` with the position and the violation, as Exchange reports it.
    pub fn schema_violation(at: &Element, violation: String) -> Self {
        Self::schema_violation_at(at.line, at.column, violation)
    }

    /// `ErrorSchemaValidation` at a position in the request.
    pub fn schema_violation_at(line: usize, column: usize, violation: String) -> Self {
        Self {
            code: "ErrorSchemaValidation",
            message: format!("The request failed schema validation: {violation}"),
            message_xml: Some(format!(
                "<t:LineNumber>{line}</t:LineNumber><t:LinePosition>{column}</t:LinePosition><t:Violation>{}</t:Violation>",
                escape(&violation)
            )),
        }
    }

    /// `ErrorInvalidRequest`: the request is not one this server can serve.
    pub fn invalid_request(message: &str) -> Self {
        Self::new(
            "ErrorInvalidRequest",
            format!("The request is invalid. {message}")
                .trim_end()
                .to_string(),
        )
    }

    /// `ErrorServerBusy` with the back-off the client must wait.
    pub fn server_busy(back_off_ms: u64) -> Self {
        Self {
            code: "ErrorServerBusy",
            message: "The server cannot service this request right now. Try again later.".into(),
            message_xml: Some(format!(
                r#"<t:Value Name="BackOffMilliseconds">{back_off_ms}</t:Value>"#
            )),
        }
    }

    /// `ErrorExceededConnectionCount`: too many concurrent requests for this account.
    pub fn exceeded_connection_count() -> Self {
        Self::new(
            "ErrorExceededConnectionCount",
            "You have exceeded the available concurrent connections for your account.  Try again once your other requests have completed.",
        )
    }

    /// `ErrorImpersonateUserDenied`: the caller has no impersonation right for the target.
    pub fn impersonate_user_denied() -> Self {
        Self::new(
            "ErrorImpersonateUserDenied",
            "The account does not have permission to impersonate the requested user.",
        )
    }

    /// `ErrorNonExistentMailbox` for the impersonated address.
    pub fn non_existent_mailbox(address: &str) -> Self {
        let error = ResponseError::non_existent_mailbox(address);
        Self {
            code: error.code,
            message: error.text,
            message_xml: error.message_xml,
        }
    }

    /// Writes the fault envelope.
    pub fn to_envelope(&self, version: &ServerVersion) -> String {
        let mut body = String::with_capacity(600);
        let _ = write!(
            body,
            r#"<s:Fault><faultcode xmlns:a="{NS_TYPES}">a:{code}</faultcode><faultstring>{message}</faultstring><detail><e:ResponseCode xmlns:e="{NS_ERRORS}">{code}</e:ResponseCode><e:Message xmlns:e="{NS_ERRORS}">{message}</e:Message>"#,
            code = self.code,
            message = escape(&self.message),
        );
        if let Some(xml) = &self.message_xml {
            let _ = write!(
                body,
                r#"<t:MessageXml xmlns:t="{NS_TYPES}">{xml}</t:MessageXml>"#
            );
        }
        body.push_str("</detail></s:Fault>");
        envelope(version, &body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ews::xml::parse;

    #[test]
    fn header_names_version_and_impersonation() {
        let root = parse(
            r#"<e:Envelope xmlns:e="urn:e"><e:Header><x:RequestServerVersion Version="Exchange2016"/><x:ExchangeImpersonation><x:ConnectingSID><x:PrincipalName>alice@lab.example</x:PrincipalName></x:ConnectingSID></x:ExchangeImpersonation></e:Header><e:Body><y:GetFolder/></e:Body></e:Envelope>"#,
        )
        .expect("parses");
        let request = Request::from_envelope(root).expect("valid envelope");
        assert_eq!(request.operation.name, "GetFolder");
        assert_eq!(request.version.as_deref(), Some("Exchange2016"));
        assert_eq!(
            request.impersonation,
            Some(ConnectingSid::PrincipalName("alice@lab.example".into()))
        );
    }

    #[test]
    fn unknown_schema_version_is_a_schema_fault() {
        let root = parse(
            r#"<Envelope><Header><RequestServerVersion Version="Exchange2099"/></Header><Body><GetFolder/></Body></Envelope>"#,
        )
        .expect("parses");
        let fault = Request::from_envelope(root).unwrap_err();
        assert_eq!(fault.code, "ErrorSchemaValidation");
    }

    #[test]
    fn server_busy_fault_carries_the_back_off() {
        let text = Fault::server_busy(1500).to_envelope(&ON_PREMISES_VERSION);
        assert!(
            text.contains(r#"<t:Value Name="BackOffMilliseconds">1500</t:Value>"#),
            "{text}"
        );
        assert!(text.contains("a:ErrorServerBusy"), "{text}");
        assert!(text.contains("ServerVersionInfo"), "{text}");
    }
}
