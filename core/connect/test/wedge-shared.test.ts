/** The wedge matrix (wedge-matrix.ts) with the plugin's tasks on a thread of the shared pool (a trusted plugin). */
import { wedgeMatrix } from './wedge-matrix.js';

wedgeMatrix('shared');
