/**
 * The exception family of the crypto core, mirroring opseal.crypto.errors: every failure is a
 * CryptoError; subclasses name the kind of check that failed. Messages name the field or rule,
 * never key material or plaintext.
 */

export class CryptoError extends Error {
  override name = "CryptoError";
}
/** Malformed bytes (length, trailing data, bad field). */
export class DecodeError extends CryptoError {
  override name = "DecodeError";
}
/** A label or version this code does not know. */
export class UnsupportedVersion extends DecodeError {
  override name = "UnsupportedVersion";
}
export class SignatureError extends CryptoError {
  override name = "SignatureError";
}
export class CertificateError extends CryptoError {
  override name = "CertificateError";
}
export class CharterError extends CryptoError {
  override name = "CharterError";
}
export class PolicyError extends CryptoError {
  override name = "PolicyError";
}
export class MerkleError extends CryptoError {
  override name = "MerkleError";
}
/** Attachment metadata, sizes or hashes do not match. */
export class AttachmentError extends CryptoError {
  override name = "AttachmentError";
}
/** A STREAM chunk truncated, reordered, extended or tampered with. */
export class StreamError extends AttachmentError {
  override name = "StreamError";
}
/** An AEAD or HPKE open failed (wrong key, tampered data). */
export class DecryptionError extends CryptoError {
  override name = "DecryptionError";
}
/** A message envelope that fails validation. */
export class EnvelopeError extends CryptoError {
  override name = "EnvelopeError";
}
/** An envelope presented in another instance, operation, area or epoch. */
export class ContextError extends EnvelopeError {
  override name = "ContextError";
}
/** An envelope sealed on another branch of the same epoch (its authenticator differs). */
export class ForkError extends EnvelopeError {
  override name = "ForkError";
}
/** An envelope whose (sender, counter) was already accepted. */
export class ReplayError extends EnvelopeError {
  override name = "ReplayError";
}
/** A group commit that fails validation. */
export class CommitError extends CryptoError {
  override name = "CommitError";
}
/** A commit or message for the wrong epoch. */
export class EpochError extends CommitError {
  override name = "EpochError";
}
/** A key file could not be opened with this passphrase. */
export class WrongPassphrase extends DecryptionError {
  override name = "WrongPassphrase";
}
