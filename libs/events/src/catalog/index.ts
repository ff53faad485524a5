export * from './schemas';
export * from './streams';
export * from './events';
