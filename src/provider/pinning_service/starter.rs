//! What `init --provider pinning-service` writes: Pinata's block live, and
//! the other services that speak the API ready to uncomment.

use crate::provider::registry::{Starter, commented};

/// A service that speaks the Pinning Service API, with what a ready block
/// for it needs.
pub(super) struct Service {
    /// The provider's name in the manifest.
    pub(super) name: &'static str,
    /// The service, and its published rate limit if it has one.
    comment: &'static str,
    pub(super) base_url: &'static str,
    pub(super) token_var: &'static str,
    /// The `rate_limit` (and `rate_limits`) lines of its published limit,
    /// each with its comment (if not empty).
    pace: &'static [(&'static str, &'static str)],
}

/// The service whose block is written live.
pub(super) const LIVE_SERVICE: Service = Service {
    name: "pinata",
    comment: "Pinata: 60, 250 or 500 requests a minute by plan",
    base_url: "https://api.pinata.cloud/psa",
    token_var: "PINATA_JWT",
    pace: &[
        (
            "rate_limit: 500/min",
            "the top plan's: pinsync slows down to what yours enforces",
        ),
        (
            "rate_limits: {list: 30/min}",
            "on every plan; a lookup before each add is a list",
        ),
    ],
};

/// Services whose blocks are written commented, ready to uncomment.
pub(super) const READY_SERVICES: &[Service] = &[
    Service {
        name: "filebase",
        comment: "Filebase: 100 requests a second",
        base_url: "https://api.filebase.io/v1/ipfs",
        token_var: "FILEBASE_TOKEN",
        pace: &[("rate_limit: 100/s", "")],
    },
    Service {
        name: "foreverland",
        comment: "4EVERLAND",
        base_url: "https://api.4everland.dev",
        token_var: "FOREVERLAND_TOKEN",
        pace: &[],
    },
    Service {
        name: "crust",
        comment: "Crust",
        base_url: "https://pin.crustcode.com/psa",
        token_var: "CRUST_TOKEN",
        pace: &[],
    },
    Service {
        name: "aioz-psa",
        comment: "AIOZ W3IPFS: 180 requests a minute",
        base_url: "https://api-ipfs.attoaioz.cyou/api/psa",
        token_var: "AIOZ_PSA_TOKEN",
        pace: &[("rate_limit: 180/min", "")],
    },
    Service {
        name: "cluster",
        comment: "ipfs-cluster's pinsvcapi endpoint",
        base_url: "http://127.0.0.1:9097",
        token_var: "CLUSTER_TOKEN",
        pace: &[],
    },
];

impl Service {
    /// The block under `providers:`, each line prefixed by `prefix`
    /// (`# ` to leave it commented).
    pub(super) fn block(&self, prefix: &str) -> String {
        let mut text = commented(&format!("  {prefix}{}:", self.name), self.comment);
        text.push_str(&format!("  {prefix}  type: pinning-service\n"));
        text.push_str(&format!("  {prefix}  base_url: {}\n", self.base_url));
        text.push_str(&format!("  {prefix}  token: ${{{}}}\n", self.token_var));
        for (line, comment) in self.pace {
            let line = format!("  {prefix}  {line}");
            if comment.is_empty() {
                text.push_str(&line);
                text.push('\n');
            } else {
                text.push_str(&commented(&line, comment));
            }
        }
        text
    }
}

/// The `providers:` lines, the example pin's target and extras.
pub(super) fn starter() -> Starter {
    let live = &LIVE_SERVICE;
    let mut providers = live.block("");
    providers.push_str(
        "  # Other services that speak the Pinning Service API: uncomment one,\n  \
         # and name it in `defaults.to` or a pin's `to`.\n",
    );
    for service in READY_SERVICES {
        providers.push_str(&service.block("# "));
    }
    providers.push_str(&commented(
        "  #   # allow_insecure_http: true",
        "only for plain http to a host that is not loopback",
    ));
    Starter {
        providers,
        target: live.name,
        pin_extras: commented(
            "    # origins: [/dnsaddr/node.example/p2p/...]",
            "peers that have the data",
        ),
        variables: vec![live.token_var],
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// Each ready block, uncommented in place of the live one, gives a
    /// manifest that validates with that service as its only provider.
    #[test]
    fn every_ready_pinning_service_block_validates_once_uncommented() {
        let kind = crate::manifest::ProviderKind::from_name("pinning-service").unwrap();
        let text = crate::init::starter_manifest(kind);
        let live = &LIVE_SERVICE;
        assert!(text.contains(&live.block("")));
        for service in std::iter::once(live).chain(READY_SERVICES) {
            let swapped = if service.name == live.name {
                text.clone()
            } else {
                let block = service.block("# ");
                assert!(text.contains(&block), "{}", service.name);
                text.replace(&live.block(""), "")
                    .replace(&block, &service.block(""))
                    .replace(
                        &format!("to: [{}]", live.name),
                        &format!("to: [{}]", service.name),
                    )
            };
            let m = crate::manifest::parse(Path::new("pins.yaml"), swapped.as_bytes())
                .unwrap_or_else(|d| panic!("{}: {d}\n{swapped}", service.name));
            let config = &m.providers[service.name];
            assert_eq!(m.providers.len(), 1, "{}", service.name);
            assert_eq!(config.base_url, service.base_url);
            assert_eq!(
                config.settings.secret("token").map(|s| s.var.as_str()),
                Some(service.token_var)
            );
        }
    }
}
