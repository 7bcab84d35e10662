export * from './elementwise';
export * from './reduce';
export * from './mean';
export * from './shape';
export * from './conv';
export * from './pool';
export * from './linear';
export * from './nn';
