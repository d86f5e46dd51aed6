//! Alerts by e-mail over SMTP (lettre): `FAULTLINE_SMTP_URL` such as
//! `smtp://user:pass@mail.example.com:587?tls=required` (STARTTLS required),
//! `smtps://…:465` (implicit TLS) or `smtp://127.0.0.1:25` (a local relay, no TLS), and
//! `FAULTLINE_SMTP_FROM`. One transport, pooled, for every message.

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::Error as SmtpError;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::Outcome;

/// A message in both forms every mail client can show.
pub struct Email {
    pub subject: String,
    pub text: String,
    pub html: String,
}

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    /// `None` when no SMTP server is configured (e-mail channels then fail, saying so).
    pub fn from_settings(url: Option<&str>, from: Option<&str>) -> anyhow::Result<Option<Self>> {
        let Some(url) = url.filter(|u| !u.trim().is_empty()) else {
            return Ok(None);
        };
        let from = from
            .filter(|f| !f.trim().is_empty())
            .unwrap_or("Faultline <faultline@localhost>")
            .parse()
            .map_err(|e| anyhow::anyhow!("FAULTLINE_SMTP_FROM is not an address: {e}"))?;
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| anyhow::anyhow!("FAULTLINE_SMTP_URL is not a valid SMTP URL: {e}"))?
            .timeout(Some(std::time::Duration::from_secs(10)))
            .build();
        Ok(Some(Mailer { transport, from }))
    }

    /// Sends `email` to every address of the comma-separated `to`.
    pub async fn send(&self, to: &str, email: Email) -> Outcome {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(email.subject);
        for address in to.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            match address.parse::<Mailbox>() {
                Ok(mailbox) => builder = builder.to(mailbox),
                Err(e) => return Outcome::Refused(format!("{address:?} is not an address: {e}")),
            }
        }
        let message =
            match builder.multipart(MultiPart::alternative_plain_html(email.text, email.html)) {
                Ok(message) => message,
                Err(e) => return Outcome::Refused(format!("could not build the message: {e}")),
            };
        match self.transport.send(message).await {
            Ok(_) => Outcome::Delivered,
            Err(e) => outcome_of(&e),
        }
    }
}

/// 5xx answers are permanent (a rejected address); everything else may pass later.
fn outcome_of(error: &SmtpError) -> Outcome {
    let text = format!("the SMTP server refused the message: {error}");
    if error.is_permanent() {
        Outcome::Refused(text)
    } else {
        Outcome::Retry(text, None)
    }
}

/// Checks a comma-separated list of addresses (when a channel is added).
pub fn check_addresses(to: &str) -> Result<(), String> {
    let addresses: Vec<&str> = to
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .collect();
    if addresses.is_empty() {
        return Err("give at least one e-mail address".into());
    }
    for address in addresses {
        address
            .parse::<Mailbox>()
            .map_err(|e| format!("{address:?} is not an e-mail address: {e}"))?;
    }
    Ok(())
}

/// Text for an HTML part: `&`, `<`, `>`, `"` and `'` escaped.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked_and_html_is_escaped() {
        assert!(check_addresses("ops@example.com, Ann <ann@example.com>").is_ok());
        assert!(check_addresses("not an address").is_err());
        assert!(check_addresses(" , ").is_err());
        assert_eq!(
            escape_html("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
    }
}
