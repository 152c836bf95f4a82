//! Money without floats. Prices are exact decimals of USD per unit, held as
//! integer atto-dollars (1e-18 USD); charges are integer nano-dollars
//! (1e-9 USD), the unit the ledger and usage records store.

use std::fmt;
use std::str::FromStr;

/// Nano-dollars (1e-9 USD). `i64` covers ±9.2 billion dollars.
pub type Nanos = i64;

const ATTO_PER_USD: u128 = 1_000_000_000_000_000_000;
const ATTO_PER_NANO: u128 = 1_000_000_000;
const MAX_FRACTION_DIGITS: usize = 18;

/// An exact, non-negative price in USD per unit (token, request, image).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Price {
    atto: u128,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid price {input:?}: {reason}")]
pub struct PriceError {
    input: String,
    reason: &'static str,
}

impl Price {
    pub const ZERO: Price = Price { atto: 0 };

    pub fn from_atto(atto: u128) -> Price {
        Price { atto }
    }

    pub fn atto(self) -> u128 {
        self.atto
    }

    pub fn is_zero(self) -> bool {
        self.atto == 0
    }

    /// Price per million units, for display ("$30/M").
    pub fn per_million_usd(self) -> f64 {
        self.atto as f64 * 1e6 / ATTO_PER_USD as f64
    }

    /// The exact cost of `units` at this price, in atto-dollars.
    pub fn cost_atto(self, units: u64) -> u128 {
        self.atto.saturating_mul(units as u128)
    }
}

/// Rounds atto-dollars to nano-dollars, half up.
pub fn atto_to_nanos(atto: u128) -> Nanos {
    let nanos = (atto + ATTO_PER_NANO / 2) / ATTO_PER_NANO;
    Nanos::try_from(nanos).unwrap_or(Nanos::MAX)
}

/// The prices one generation is charged at (those of the endpoint that
/// served it, pinned when the request was routed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rates {
    pub prompt: Price,
    pub completion: Price,
    /// Flat price per request.
    pub request: Price,
}

/// What one generation is charged, in nano-dollars.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Charge {
    pub prompt: Nanos,
    pub completion: Nanos,
    /// Rounded once from the exact sum (so it may differ from prompt +
    /// completion by a nano-dollar) and including any per-request price.
    pub total: Nanos,
}

/// Zero-completion insurance: a generation that produced no completion
/// tokens, or that ended in an error (a provider failure, also mid-stream
/// after partial output), is not charged for model tokens. A client that
/// hangs up is not an error: what it received is billed.
pub fn is_insured(completion_tokens: u64, finish_reason: &str) -> bool {
    completion_tokens == 0 || finish_reason == "error"
}

impl Rates {
    /// The one pricing rule, shared by the router (the `usage.cost` it
    /// returns) and usage-metering (what it records): exact atto-dollar
    /// arithmetic, rounded once per figure. Reasoning tokens are part of the
    /// completion tokens.
    pub fn charge(
        &self,
        prompt_tokens: u64,
        completion_tokens: u64,
        finish_reason: &str,
    ) -> Charge {
        if is_insured(completion_tokens, finish_reason) {
            return Charge::default();
        }
        let prompt = self.prompt.cost_atto(prompt_tokens);
        let completion = self.completion.cost_atto(completion_tokens);
        let request = self.request.cost_atto(1);
        Charge {
            prompt: atto_to_nanos(prompt),
            completion: atto_to_nanos(completion),
            total: atto_to_nanos(prompt.saturating_add(completion).saturating_add(request)),
        }
    }
}

/// An amount of USD as written by a person or a JSON number ("10", "0.25",
/// 12.5), in nano-dollars. None if negative, malformed, finer than a
/// nano-dollar or beyond i64.
pub fn usd_to_nanos(text: &str) -> Option<Nanos> {
    let price: Price = text.parse().ok()?;
    if !price.atto.is_multiple_of(ATTO_PER_NANO) {
        return None;
    }
    Nanos::try_from(price.atto / ATTO_PER_NANO).ok()
}

/// A JSON number of USD (e.g. a key `limit`) in nano-dollars, through its
/// shortest decimal form so 0.1 stays exact.
pub fn usd_f64_to_nanos(usd: f64) -> Option<Nanos> {
    if !usd.is_finite() || usd < 0.0 {
        return None;
    }
    usd_to_nanos(&format!("{usd}"))
}

/// Nano-dollars as a USD amount for JSON bodies (display only; never summed).
pub fn nanos_to_usd(nanos: Nanos) -> f64 {
    nanos as f64 / 1e9
}

impl FromStr for Price {
    type Err = PriceError;

    fn from_str(input: &str) -> Result<Price, PriceError> {
        let err = |reason| PriceError {
            input: input.to_owned(),
            reason,
        };
        let s = input.trim();
        if s.is_empty() {
            return Err(err("empty"));
        }
        if s.starts_with('-') {
            return Err(err("negative"));
        }
        let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
        if whole.is_empty() && frac.is_empty() {
            return Err(err("no digits"));
        }
        if !whole
            .bytes()
            .chain(frac.bytes())
            .all(|b| b.is_ascii_digit())
        {
            return Err(err("not a plain decimal number"));
        }
        let frac = frac.trim_end_matches('0');
        if frac.len() > MAX_FRACTION_DIGITS {
            return Err(err("more than 18 decimal places"));
        }
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| err("too large"))?
        };
        let mut frac_atto: u128 = 0;
        if !frac.is_empty() {
            frac_atto = frac.parse().map_err(|_| err("bad fraction"))?;
            frac_atto *= 10u128.pow((MAX_FRACTION_DIGITS - frac.len()) as u32);
        }
        let atto = whole
            .checked_mul(ATTO_PER_USD)
            .and_then(|w| w.checked_add(frac_atto))
            .ok_or_else(|| err("too large"))?;
        Ok(Price { atto })
    }
}

impl fmt::Display for Price {
    /// Shortest exact decimal, e.g. "0.00003", "0", "1.5".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.atto / ATTO_PER_USD;
        let frac = self.atto % ATTO_PER_USD;
        if frac == 0 {
            return write!(f, "{whole}");
        }
        let digits = format!("{frac:018}");
        write!(f, "{whole}.{}", digits.trim_end_matches('0'))
    }
}

impl serde::Serialize for Price {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Price {
    /// Accepts a decimal string ("0.00003") or a JSON/TOML number; numbers go
    /// through their shortest decimal form, so 0.00003 stays exact.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Price, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Price;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a decimal price in USD")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Price, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Price, E> {
                v.to_string().parse().map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Price, E> {
                v.to_string().parse().map_err(E::custom)
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Price, E> {
                // `{}` on f64 prints the shortest round-trip decimal without exponent.
                format!("{v}").parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Price {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_prints_exactly() {
        for s in [
            "0",
            "0.00003",
            "0.00006",
            "0.0000000375",
            "1.5",
            "12",
            "0.000000000000000001",
        ] {
            assert_eq!(p(s).to_string(), s);
        }
        assert_eq!(p("0.000030").to_string(), "0.00003");
        assert_eq!(p(".5").to_string(), "0.5");
    }

    #[test]
    fn rejects_inexact_or_odd_input() {
        for s in [
            "",
            "-1",
            "1e-5",
            "abc",
            "0.0000000000000000001",
            ".",
            "1.2.3",
        ] {
            assert!(s.parse::<Price>().is_err(), "{s}");
        }
    }

    #[test]
    fn gpt4_cost_is_exact() {
        // $30/M prompt, $60/M completion: 37 prompt + 8 completion tokens.
        let cost = p("0.00003").cost_atto(37) + p("0.00006").cost_atto(8);
        assert_eq!(atto_to_nanos(cost), 1_590_000);
    }

    #[test]
    fn sub_nano_costs_round_half_up() {
        assert_eq!(atto_to_nanos(p("0.0000000375").cost_atto(13)), 488); // 487.5 nanos
        assert_eq!(atto_to_nanos(p("0.0000000000375").cost_atto(13)), 0); // 0.4875 nano
        assert_eq!(atto_to_nanos(p("0.0000000000375").cost_atto(14)), 1); // 0.525 nano
    }

    #[test]
    fn usd_amounts_parse_exactly() {
        assert_eq!(usd_to_nanos("10"), Some(10_000_000_000));
        assert_eq!(usd_to_nanos("0.000000001"), Some(1));
        assert_eq!(usd_to_nanos("0.0000000001"), None);
        assert_eq!(usd_to_nanos("-1"), None);
        assert_eq!(usd_f64_to_nanos(0.1), Some(100_000_000));
        assert_eq!(usd_f64_to_nanos(f64::NAN), None);
        assert_eq!(usd_f64_to_nanos(1e30), None);
    }

    #[test]
    fn charges_follow_zero_completion_insurance() {
        let rates = Rates {
            prompt: p("0.00003"),
            completion: p("0.00006"),
            request: p("0.001"),
        };
        let charge = rates.charge(37, 8, "stop");
        assert_eq!(charge.prompt, 1_110_000);
        assert_eq!(charge.completion, 480_000);
        assert_eq!(charge.total, 1_590_000 + 1_000_000);
        assert_eq!(
            rates.charge(37, 0, ""),
            Charge::default(),
            "nothing generated"
        );
        assert_eq!(
            rates.charge(37, 0, "error"),
            Charge::default(),
            "failed before any output"
        );
        assert_eq!(
            rates.charge(37, 8, "error"),
            Charge::default(),
            "a request that ended in an error is not charged"
        );
        assert_eq!(
            rates.charge(37, 0, "stop"),
            Charge::default(),
            "nothing generated, even if the provider says it stopped"
        );
        assert_eq!(
            rates.charge(37, 8, "").total,
            1_590_000 + 1_000_000,
            "a client that hung up pays for what it received"
        );
    }

    #[test]
    fn deserializes_numbers_and_strings() {
        let v: Vec<Price> = serde_json::from_str(r#"["0.00003", 0.00003, 2]"#).unwrap();
        assert_eq!(v, vec![p("0.00003"), p("0.00003"), p("2")]);
        assert_eq!(p("0.00003").per_million_usd(), 30.0);
    }
}
