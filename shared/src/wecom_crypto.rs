//! WeCom callback crypto, as WeCom's SDKs do it: `msg_signature` = SHA-1 of the
//! sorted concatenation of token, timestamp, nonce and the encrypted text; the text
//! is AES-256-CBC with key = base64(EncodingAESKey + "="), IV = the key's first 16
//! bytes, PKCS#7 padding to a multiple of 32 bytes; the plaintext is 16 random bytes,
//! the message length (u32, big-endian), the message, and the receive id (the corp
//! id). Plus a small reader for the flat XML WeCom sends. Pure; never panics on
//! hostile input (checked against the SDK's reference vector in the tests).

use aes::Aes256;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::{Engine, alphabet};
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use sha1::{Digest, Sha1};

const PAD_BLOCK: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("the EncodingAESKey is not 43 base64 characters")]
    BadKey,
    #[error("the encrypted text is not valid base64 AES blocks")]
    BadCiphertext,
    #[error("the decrypted message is malformed")]
    BadPlaintext,
    #[error("the message is for another receiver")]
    WrongReceiver,
}

/// The 32-byte AES key of an EncodingAESKey.
pub fn aes_key(encoding_aes_key: &str) -> Result<[u8; 32], CryptoError> {
    if encoding_aes_key.len() != 43 {
        return Err(CryptoError::BadKey);
    }
    // WeCom's keys end in a character whose low bits are not zero, which a strict
    // decoder refuses; its SDKs decode leniently, so do we.
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
    );
    let bytes = LENIENT
        .decode(format!("{encoding_aes_key}="))
        .map_err(|_| CryptoError::BadKey)?;
    bytes.try_into().map_err(|_| CryptoError::BadKey)
}

/// `msg_signature` over the four values, as lowercase hex.
pub fn signature(token: &str, timestamp: &str, nonce: &str, encrypted: &str) -> String {
    let mut parts = [token, timestamp, nonce, encrypted];
    parts.sort_unstable();
    hex::encode(Sha1::digest(parts.concat().as_bytes()))
}

/// Constant-time comparison of a presented signature with the expected one.
pub fn signature_matches(expected: &str, presented: &str) -> bool {
    let (a, b) = (expected.as_bytes(), presented.trim().to_ascii_lowercase().into_bytes());
    a.len() == b.len() && a.iter().zip(&b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The message inside `encrypted`, checked to be for `receive_id`.
pub fn decrypt(key: &[u8; 32], encrypted: &str, receive_id: &str) -> Result<String, CryptoError> {
    let mut buf = STANDARD
        .decode(encrypted.trim())
        .map_err(|_| CryptoError::BadCiphertext)?;
    if buf.is_empty() || buf.len() % 16 != 0 {
        return Err(CryptoError::BadCiphertext);
    }
    let iv: [u8; 16] = key[..16].try_into().map_err(|_| CryptoError::BadKey)?;
    let plain = cbc::Decryptor::<Aes256>::new(key.into(), &iv.into())
        .decrypt_padded_mut::<NoPadding>(&mut buf)
        .map_err(|_| CryptoError::BadCiphertext)?;
    let pad = usize::from(*plain.last().ok_or(CryptoError::BadPlaintext)?);
    if pad == 0
        || pad > PAD_BLOCK
        || pad > plain.len()
        || plain[plain.len() - pad..].iter().any(|&b| usize::from(b) != pad)
    {
        return Err(CryptoError::BadPlaintext);
    }
    let body = &plain[..plain.len() - pad];
    let len_bytes: [u8; 4] = body
        .get(16..20)
        .and_then(|b| b.try_into().ok())
        .ok_or(CryptoError::BadPlaintext)?;
    let len = u32::from_be_bytes(len_bytes) as usize;
    let message = body.get(20..20 + len).ok_or(CryptoError::BadPlaintext)?;
    let receiver = body.get(20 + len..).ok_or(CryptoError::BadPlaintext)?;
    if receiver != receive_id.as_bytes() {
        return Err(CryptoError::WrongReceiver);
    }
    String::from_utf8(message.to_vec()).map_err(|_| CryptoError::BadPlaintext)
}

/// Encrypts as WeCom does (for replies and for tests that play WeCom).
pub fn encrypt(key: &[u8; 32], message: &str, receive_id: &str, random16: [u8; 16]) -> String {
    let mut plain = Vec::with_capacity(20 + message.len() + receive_id.len() + PAD_BLOCK);
    plain.extend_from_slice(&random16);
    plain.extend_from_slice(&(message.len() as u32).to_be_bytes());
    plain.extend_from_slice(message.as_bytes());
    plain.extend_from_slice(receive_id.as_bytes());
    let pad = PAD_BLOCK - plain.len() % PAD_BLOCK;
    plain.extend(std::iter::repeat_n(pad as u8, pad));
    let len = plain.len();
    let mut iv = [0u8; 16];
    iv.copy_from_slice(&key[..16]);
    let encrypted = cbc::Encryptor::<Aes256>::new(key.into(), &iv.into())
        .encrypt_padded_mut::<NoPadding>(&mut plain, len)
        .map(<[u8]>::to_vec)
        .unwrap_or_default();
    STANDARD.encode(encrypted)
}

/// The text of `<tag>…</tag>` in flat XML, CDATA unwrapped; the first occurrence.
pub fn xml_field(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml.get(start..)?.find(&close)?;
    let inner = xml.get(start..end)?.trim();
    let text = inner
        .strip_prefix("<![CDATA[")
        .and_then(|s| s.strip_suffix("]]>"))
        .unwrap_or(inner);
    Some(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector() -> serde_json::Value {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/wecom-callback.json");
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn the_sdk_vector_verifies_and_decrypts() {
        let v = vector();
        let key = aes_key(v["encoding_aes_key"].as_str().unwrap()).unwrap();
        let token = v["token"].as_str().unwrap();
        let receiver = v["receive_id"].as_str().unwrap();
        for case in ["verify_url", "decrypt_message"] {
            let c = &v[case];
            let encrypted = c["echostr"].as_str().or(c["encrypt"].as_str()).unwrap();
            let expected = signature(
                token,
                c["timestamp"].as_str().unwrap(),
                c["nonce"].as_str().unwrap(),
                encrypted,
            );
            assert!(
                signature_matches(&expected, c["msg_signature"].as_str().unwrap()),
                "{case}"
            );
            assert_eq!(
                decrypt(&key, encrypted, receiver).unwrap(),
                c["plaintext"].as_str().unwrap(),
                "{case}"
            );
            assert_eq!(
                decrypt(&key, encrypted, "another-corp"),
                Err(CryptoError::WrongReceiver)
            );
        }
    }

    #[test]
    fn what_we_encrypt_decrypts_and_hostile_input_is_refused() {
        let key = aes_key("jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C").unwrap();
        for message in ["", "a", "<xml>好</xml>", &"x".repeat(1000)] {
            let encrypted = encrypt(&key, message, "corp", [7; 16]);
            assert_eq!(decrypt(&key, &encrypted, "corp").unwrap(), message);
        }
        for junk in [
            "",
            "!!!",
            "AAAA",
            &STANDARD.encode([0u8; 32]),
            &STANDARD.encode([0u8; 15]),
        ] {
            assert!(decrypt(&key, junk, "corp").is_err(), "{junk}");
        }
        assert_eq!(aes_key("short"), Err(CryptoError::BadKey));
        assert!(!signature_matches("abc", "abd"));
    }

    #[test]
    fn flat_xml_fields_are_read_with_or_without_cdata() {
        let xml = "<xml><ToUserName><![CDATA[ww1]]></ToUserName><CreateTime>1403610513</CreateTime><State><![CDATA[]]></State></xml>";
        assert_eq!(xml_field(xml, "ToUserName").as_deref(), Some("ww1"));
        assert_eq!(xml_field(xml, "CreateTime").as_deref(), Some("1403610513"));
        assert_eq!(xml_field(xml, "State").as_deref(), Some(""));
        assert_eq!(xml_field(xml, "Missing"), None);
        assert_eq!(xml_field("<A>unclosed", "A"), None);
    }

    proptest::proptest! {
        #[test]
        fn no_input_makes_decrypt_or_the_xml_reader_panic(text in ".{0,300}", bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200), tag in "[A-Za-z]{0,12}") {
            let key = aes_key("jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C").unwrap();
            let _ = decrypt(&key, &text, "corp");
            let _ = decrypt(&key, &STANDARD.encode(&bytes), "corp");
            let _ = xml_field(&text, &tag);
            let _ = aes_key(&text);
        }
    }
}
