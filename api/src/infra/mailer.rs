//! Delivering one message: to the log, to a directory of `.eml` files, or
//! over SMTP (lettre). Queueing, retries and bookkeeping are the outbox's
//! (`domain::mail`); a `Mailer` only says whether one attempt worked, and
//! whether a failure is worth retrying.

use std::path::PathBuf;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};
use uuid::Uuid;

use crate::config::MailerConfig;

/// One message, as the outbox holds it.
#[derive(Clone, Debug)]
pub struct Outgoing {
    /// The outbox row: also the `Message-ID`, so a receiver can tell a
    /// redelivery (after a crash between sending and recording it) from a
    /// new message, and the file name of `file:` delivery.
    pub id: Uuid,
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
}

/// Why an attempt failed.
#[derive(Debug)]
pub struct MailError {
    /// Retrying cannot help (a malformed address, a 5xx reply).
    pub permanent: bool,
    pub message: String,
}

impl MailError {
    fn transient(message: impl Into<String>) -> Self {
        Self {
            permanent: false,
            message: message.into(),
        }
    }
    fn permanent(message: impl Into<String>) -> Self {
        Self {
            permanent: true,
            message: message.into(),
        }
    }
}

pub enum Mailer {
    Log {
        from: Mailbox,
    },
    File {
        dir: PathBuf,
        from: Mailbox,
    },
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        from: Mailbox,
    },
}

/// How long one SMTP conversation may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(15);

impl Mailer {
    /// # Errors
    /// A `MAIL_FROM` that is not an address, an SMTP URL lettre cannot use,
    /// or a `file:` directory that cannot be created.
    pub fn from_config(config: &MailerConfig, from: &str) -> anyhow::Result<Self> {
        let from: Mailbox = from
            .parse()
            .map_err(|e| anyhow::anyhow!("MAIL_FROM: {e}"))?;
        Ok(match config {
            MailerConfig::Log => Self::Log { from },
            MailerConfig::File(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| anyhow::anyhow!("MAILER: cannot create {}: {e}", dir.display()))?;
                Self::File {
                    dir: dir.clone(),
                    from,
                }
            }
            MailerConfig::Smtp(url) => Self::Smtp {
                transport: AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose())
                    .map_err(|e| anyhow::anyhow!("MAILER: {e}"))?
                    .timeout(Some(SMTP_TIMEOUT))
                    .build(),
                from,
            },
        })
    }

    /// One delivery attempt.
    ///
    /// # Errors
    /// What went wrong, and whether it is worth retrying.
    pub async fn send(&self, mail: &Outgoing) -> Result<(), MailError> {
        let (Self::Log { from } | Self::File { from, .. } | Self::Smtp { from, .. }) = self;
        let message = build(from, mail)?;
        match self {
            Self::Log { .. } => {
                tracing::info!(
                    to = %mail.to,
                    subject = %mail.subject,
                    body = %mail.text,
                    "mail (MAILER=log: not sent anywhere)"
                );
                Ok(())
            }
            Self::File { dir, .. } => {
                // Written under a temporary name, then renamed: a reader never
                // sees half a message, and a redelivery replaces the same file.
                let done = dir.join(format!("{}.eml", mail.id));
                let partial = dir.join(format!(".{}.eml.partial", mail.id));
                tokio::fs::write(&partial, message.formatted())
                    .await
                    .map_err(|e| {
                        MailError::transient(format!("write {}: {e}", partial.display()))
                    })?;
                tokio::fs::rename(&partial, &done)
                    .await
                    .map_err(|e| MailError::transient(format!("rename to {}: {e}", done.display())))
            }
            Self::Smtp { transport, .. } => match transport.send(message).await {
                Ok(_) => Ok(()),
                // A refused login (530/534/535/538) is the server's setup,
                // not the message: retried, e.g. across a credential rotation.
                Err(e) if e.is_permanent() && !auth_refused(&e) => {
                    Err(MailError::permanent(e.to_string()))
                }
                Err(e) => Err(MailError::transient(e.to_string())),
            },
        }
    }
}

fn auth_refused(e: &lettre::transport::smtp::Error) -> bool {
    e.status()
        .is_some_and(|code| ["530", "534", "535", "538"].contains(&code.to_string().as_str()))
}

fn build(from: &Mailbox, mail: &Outgoing) -> Result<Message, MailError> {
    let to: Mailbox = mail
        .to
        .parse()
        .map_err(|e| MailError::permanent(format!("recipient {:?}: {e}", mail.to)))?;
    let builder = Message::builder()
        .from(from.clone())
        .to(to)
        .subject(mail.subject.clone())
        .message_id(Some(format!("<{}@usergraph>", mail.id)));
    let built = match &mail.html {
        Some(html) => builder.multipart(MultiPart::alternative_plain_html(
            mail.text.clone(),
            html.clone(),
        )),
        None => builder
            .header(ContentType::TEXT_PLAIN)
            .body(mail.text.clone()),
    };
    built.map_err(|e| MailError::permanent(format!("message: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outgoing() -> Outgoing {
        Outgoing {
            id: Uuid::now_v7(),
            to: "ada@example.com".into(),
            subject: "Verify your email address".into(),
            text: "Open https://app.example.com/verify-email?token=abc".into(),
            html: Some(
                "<p><a href=\"https://app.example.com/verify-email?token=abc\">Verify</a></p>"
                    .into(),
            ),
        }
    }

    #[tokio::test]
    async fn file_delivery_writes_one_complete_eml_per_message() {
        let dir = tempfile::tempdir().unwrap();
        let mailer = Mailer::from_config(
            &MailerConfig::File(dir.path().join("out")),
            "usergraph <no-reply@example.com>",
        )
        .unwrap();
        let mail = outgoing();
        mailer.send(&mail).await.unwrap();
        mailer.send(&mail).await.unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path().join("out"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(
            names,
            [format!("{}.eml", mail.id)],
            "a redelivery replaces it"
        );
        let eml = std::fs::read_to_string(dir.path().join("out").join(&names[0])).unwrap();
        assert!(eml.contains("Subject: Verify your email address"), "{eml}");
        assert!(
            eml.contains(&format!("Message-ID: <{}@usergraph>", mail.id)),
            "{eml}"
        );
        assert!(eml.contains("text/html"), "{eml}");
    }

    #[tokio::test]
    async fn a_bad_recipient_is_permanent() {
        let mailer = Mailer::from_config(&MailerConfig::Log, "no-reply@example.com").unwrap();
        let mut mail = outgoing();
        mail.to = "not an address".into();
        assert!(mailer.send(&mail).await.unwrap_err().permanent);
    }
}
