/**
 * The verifying client core of OpSeal in TypeScript (design §17): environment-agnostic
 * (global `fetch` and `WebSocket`, a `KeyValueStore` for persistence), so the same code runs
 * in Node 20 (tests) and in the browser (the web app builds on it).
 *
 * The officer's path:
 *
 *   const store = new MemoryStore();                       // IndexedDB in the browser
 *   const { requestText, fingerprint } = await createDevice(store, { server, organisationId,
 *     userId, deviceId, passphrase });                     // keys made here, never sent
 *   // the focal point certifies requestText (`opseal enrol certify`) and answers:
 *   await completeEnrolment(store, responseText, passphrase);
 *   const client = await OpSealClient.open(store, passphrase);
 *   await client.login();
 *   await client.join(invitationText, { fingerprint });    // pin the coordinator root
 *   // a coordinator admits the device (`opseal admit`), then:
 *   await client.sync();
 *   const entries = await client.read(op, "plans");        // verified content or warnings
 *   await client.acknowledge(messageId);
 *   await client.postSeizure(op, record, photo);
 *   const s = client.stream({ onEntry });                  // real time, resumes from a cursor
 *
 * Nothing the server says about membership or keys is trusted: see `Verifier`.
 */
export { type KeyValueStore, MemoryStore, SealedStore } from "./store.js";
export { IndexedDbStore } from "./idb.js";
export {
  Api, ApiError, ClientError, IntegrityError, TransportError,
  type FetchLike, type WebSocketLike, type Schemas, type WireEvent, streamProtocols,
} from "./api.js";
export {
  type DeviceInfo, type NewDevice, type PendingDevice, MIN_PASSPHRASE, REQUEST_HEADER, RESPONSE_HEADER,
  checkLogKey, completeEnrolment, createDevice, deviceState, encodeRequest, forgetDevice, readResponse,
} from "./device.js";
export { type Invitation, parseInvitation } from "./invitation.js";
export {
  type AlertView, type AreaView, type ClientOptions, type DownloadedFile, type FileInput, type OperationView,
  type PostOptions, type ShownEntry, OpSealClient,
} from "./client.js";
export { type StreamHandle, type StreamOptions } from "./stream.js";
export { type StoredMessage, type SyncReport, type Warning, uuidText } from "./verifier.js";
export {
  type AttachmentRef, type Json, ContentError, SEIZURE_NAMESPACE, alertResponse, parseAttachment, pythonJson,
  recordMessageId, seizure, text, uuid5,
} from "./content.js";
