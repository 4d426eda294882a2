//! Keys out of everything a provider's answers put in front of people or
//! into the state: the one place every provider's results pass through.
//!
//! Answers are parsed as received; what comes out of them is checked
//! after. A provider, or a proxy in front of it, may echo the request's
//! headers: the keys are replaced by `<redacted>` in every error message
//! and pin name. An id is sent back to the provider and recorded, so it
//! cannot be changed: one that holds a key is refused instead.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::http;
use super::secret::Secrets;
use super::{
    Checked, Listing, PinReceipt, PinRequest, Provider, ProviderError, UnpinReceipt, UnpinRequest,
};

/// A provider whose results hold none of its keys.
pub(crate) struct Redacted {
    inner: Arc<dyn Provider>,
    secrets: Secrets,
}

impl Redacted {
    pub(crate) fn new(inner: Arc<dyn Provider>, secrets: Secrets) -> Self {
        Self { inner, secrets }
    }

    /// `text` without the keys, shortened to a line.
    fn text(&self, text: &str) -> String {
        http::shorten(&self.secrets.redact(text))
    }

    fn error(&self, error: ProviderError) -> ProviderError {
        let redirected = matches!(error, ProviderError::Redirected { .. });
        error.map_text(|text| {
            // The URL parser lowercases a host: a key in a redirect's target
            // is looked for in any case.
            if redirected && self.secrets.occur_in_any_case(&text) {
                "an address that holds one of the keys".into()
            } else {
                self.text(&text)
            }
        })
    }

    /// `Err` if `value`, an id the provider gave, holds a key.
    fn check(&self, what: &str, value: Option<&str>) -> Result<(), ProviderError> {
        match value {
            Some(value) if self.secrets.occur_in(value) => {
                Err(ProviderError::BadResponse(format!(
                    "the provider's {what} {:?} holds one of its keys; refused, so that the key is not recorded",
                    self.text(value)
                )))
            }
            _ => Ok(()),
        }
    }

    fn receipt(
        &self,
        result: Result<PinReceipt, ProviderError>,
    ) -> Result<PinReceipt, ProviderError> {
        let receipt = result.map_err(|e| self.error(e))?;
        self.check("pin id", receipt.pin_id.as_deref())?;
        Ok(receipt)
    }

    fn listing(&self, result: Result<Listing, ProviderError>) -> Result<Listing, ProviderError> {
        let mut listing = result.map_err(|e| self.error(e))?;
        for pin in &mut listing.pins {
            self.check("pin id", pin.pin_id.as_deref())?;
            self.check("CID", Some(&pin.cid))?;
            self.check("cluster", pin.cluster.as_deref())?;
            if let Some(name) = &mut pin.name {
                *name = self.text(name);
            }
        }
        Ok(listing)
    }
}

impl Provider for Redacted {
    fn pin<'a>(
        &'a self,
        request: PinRequest<'a>,
    ) -> BoxFuture<'a, Result<PinReceipt, ProviderError>> {
        Box::pin(async move { self.receipt(self.inner.pin(request).await) })
    }

    fn look_ahead<'a>(
        &'a self,
        cids: Vec<&'a str>,
        concurrency: usize,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            let looked = self.inner.look_ahead(cids, concurrency).await;
            looked.map_err(|e| self.error(e))
        })
    }

    fn unpin<'a>(
        &'a self,
        request: UnpinRequest<'a>,
    ) -> BoxFuture<'a, Result<UnpinReceipt, ProviderError>> {
        Box::pin(async move { self.inner.unpin(request).await.map_err(|e| self.error(e)) })
    }

    fn relabel<'a>(
        &'a self,
        request: PinRequest<'a>,
        pin_id: &'a str,
    ) -> BoxFuture<'a, Result<PinReceipt, ProviderError>> {
        Box::pin(async move { self.receipt(self.inner.relabel(request, pin_id).await) })
    }

    fn status<'a>(
        &'a self,
        request: UnpinRequest<'a>,
    ) -> BoxFuture<'a, Result<Checked, ProviderError>> {
        Box::pin(async move {
            let checked = self
                .inner
                .status(request)
                .await
                .map_err(|e| self.error(e))?;
            Ok(Checked {
                detail: checked.detail.map(|d| self.text(&d)),
                ..checked
            })
        })
    }

    fn list<'a>(
        &'a self,
        cursor: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Listing, ProviderError>> {
        Box::pin(async move { self.listing(self.inner.list(cursor).await) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Labels;
    use crate::provider::{ListedPin, Secret};

    /// Answers every call with what it was given.
    struct Echoing {
        pin: Result<PinReceipt, ProviderError>,
        list: Result<Listing, ProviderError>,
    }

    impl Provider for Echoing {
        fn pin<'a>(
            &'a self,
            _: PinRequest<'a>,
        ) -> BoxFuture<'a, Result<PinReceipt, ProviderError>> {
            Box::pin(async { self.pin.clone() })
        }
        fn unpin<'a>(
            &'a self,
            _: UnpinRequest<'a>,
        ) -> BoxFuture<'a, Result<UnpinReceipt, ProviderError>> {
            Box::pin(async {
                Err(ProviderError::Unauthorized {
                    status: 401,
                    message: "bad key k, header pinning_api_key: k".into(),
                })
            })
        }
        fn status<'a>(
            &'a self,
            _: UnpinRequest<'a>,
        ) -> BoxFuture<'a, Result<Checked, ProviderError>> {
            Box::pin(async { Err(ProviderError::Transport("key-long-enough dropped".into())) })
        }
        fn list<'a>(&'a self, _: Option<&'a str>) -> BoxFuture<'a, Result<Listing, ProviderError>> {
            Box::pin(async { self.list.clone() })
        }
    }

    fn redacted(provider: Echoing) -> Redacted {
        let secrets = Secrets::new(["k", "key-long-enough"].map(|k| Secret::new(k).unwrap()));
        Redacted::new(Arc::new(provider), secrets)
    }

    fn receipt(id: &str) -> PinReceipt {
        PinReceipt {
            pin_id: Some(id.into()),
            already_pinned: false,
            foreign: false,
        }
    }

    fn listed(id: &str, name: &str) -> ListedPin {
        ListedPin {
            cid: "bafykbzacea".into(),
            cluster: None,
            pin_id: Some(id.into()),
            status: crate::state::ProviderStatus::Pinned,
            name: Some(name.into()),
            foreign: Some(false),
        }
    }

    const REQUEST: UnpinRequest<'static> = UnpinRequest {
        cid: "bafy",
        cluster: None,
        pin_id: None,
        replication_min: None,
    };

    #[tokio::test]
    async fn a_long_key_is_redacted_whole_before_the_message_is_shortened() {
        let key: String = "eyJ".chars().chain(std::iter::repeat_n('x', 400)).collect();
        let echoed = format!("proxy: authorization: Bearer {key}; more");
        let p = Redacted::new(
            Arc::new(Echoing {
                pin: Err(ProviderError::Rejected {
                    status: 400,
                    message: http::error_message(echoed.as_bytes()),
                }),
                list: Ok(Listing {
                    pins: Vec::new(),
                    next: None,
                }),
            }),
            Secrets::new([Secret::new(&key).unwrap()]),
        );
        let labels = Labels {
            name: None,
            meta: Default::default(),
            replication: None,
        };
        let request = PinRequest {
            cid: "bafy",
            cluster: None,
            labels: &labels,
            origins: &[],
            progress: None,
        };
        let message = p.pin(request).await.unwrap_err().to_string();
        assert_eq!(
            message,
            "HTTP 400: proxy: authorization: Bearer <redacted>; more"
        );
    }

    #[tokio::test]
    async fn a_key_in_a_redirects_host_is_found_in_any_case() {
        let secrets = Secrets::new([Secret::new("MiXeD-Key-1234").unwrap()]);
        let p = Redacted::new(
            Arc::new(Echoing {
                pin: Ok(receipt("7f3a")),
                list: Ok(Listing {
                    pins: Vec::new(),
                    next: None,
                }),
            }),
            secrets,
        );
        let error = p.error(ProviderError::Redirected {
            status: 302,
            to: "https://mixed-key-1234.evil.example".into(),
        });
        assert!(
            !error.to_string().to_lowercase().contains("mixed-key"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn messages_lose_the_keys_and_ids_that_hold_one_are_refused() {
        let labels = Labels {
            name: None,
            meta: Default::default(),
            replication: None,
        };
        let request = PinRequest {
            cid: "bafy",
            cluster: None,
            labels: &labels,
            origins: &[],
            progress: None,
        };
        let ok = Listing {
            pins: vec![listed("7f3a-k9", "site k")],
            next: None,
        };
        let p = redacted(Echoing {
            pin: Ok(receipt("id-7f3a-key-long-enough")),
            list: Ok(ok),
        });
        let refused = p.pin(request).await.unwrap_err();
        assert!(matches!(refused, ProviderError::BadResponse(_)));
        assert!(
            refused.to_string().contains(r#""id-7f3a-<redacted>""#),
            "{refused}"
        );
        assert_eq!(
            p.unpin(REQUEST).await.unwrap_err().to_string(),
            "HTTP 401: bad key <redacted>, header pinning_api_key: <redacted>"
        );
        assert_eq!(
            p.status(REQUEST).await.unwrap_err().to_string(),
            "<redacted> dropped"
        );
        // A short key inside an id is no echo: the listing stands, and only
        // the name's echo goes.
        let listing = p.list(None).await.unwrap();
        assert_eq!(listing.pins[0].pin_id.as_deref(), Some("7f3a-k9"));
        assert_eq!(listing.pins[0].name.as_deref(), Some("site <redacted>"));

        let p = redacted(Echoing {
            pin: Ok(receipt("7f3a")),
            list: Ok(Listing {
                pins: vec![listed("k", "site")],
                next: None,
            }),
        });
        assert_eq!(p.pin(request).await.unwrap(), receipt("7f3a"));
        assert!(
            p.list(None).await.is_err(),
            "an id that is a key is refused"
        );
    }
}
