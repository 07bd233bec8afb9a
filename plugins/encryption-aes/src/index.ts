export {DEFAULT_ITERATIONS, opensslAesCbc} from './openssl-aes-cbc.js';
