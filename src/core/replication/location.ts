import type {StorageBackend} from '../../contracts/storage.js';

/** One of the places the backups go to, opened: its stable name and its storage. */
export interface Location {
  readonly name: string;
  readonly storage: StorageBackend;
}

/** A location that could not be opened, or that failed midway: named, with the error that says why. */
export interface LocationFailure {
  readonly location: string;
  readonly error: Error;
}
