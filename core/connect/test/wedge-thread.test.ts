/** The wedge matrix (wedge-matrix.ts) with the plugin's tasks on threads of their own (an untrusted plugin). */
import { wedgeMatrix } from './wedge-matrix.js';

wedgeMatrix('thread');
