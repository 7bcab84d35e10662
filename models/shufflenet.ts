// The ShuffleNetV1 model file for `tsc-nn compile models/shufflenet.ts`. The model itself lives in
// src/models/shufflenet.ts; a model of your own is a file like this one that exports `defineModel({...})`.
import { shufflenet } from 'tsc-nn';

export default shufflenet;
